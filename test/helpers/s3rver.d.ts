/**
 * Minimal typings for s3rver 3.7.1 (a Koa-based fake S3 that ships no types), covering only what
 * test/helpers/s3.ts uses: construct, run, close, and the filesystem store on the instance.
 */
declare module 's3rver' {
  import type { AddressInfo } from 'node:net';
  import type { Server } from 'node:http';
  import type { Readable } from 'node:stream';

  namespace S3rver {
    interface BucketConfig {
      name: string;
      configs?: Array<string | Buffer>;
    }
    interface Options {
      address?: string;
      port?: number;
      silent?: boolean;
      directory?: string;
      serviceEndpoint?: string;
      resetOnClose?: boolean;
      allowMismatchedSignatures?: boolean;
      vhostBuckets?: boolean;
      configureBuckets?: BucketConfig[];
    }
    /** lib/models/object.js */
    interface S3Object {
      bucket: string;
      key: string;
      content: Readable | Buffer | null;
      metadata: Record<string, string>;
      readonly size: number;
    }
    /** lib/stores/filesystem.js (only the members the helper touches). */
    interface FilesystemStore {
      rootDirectory: string;
      getResourcePath(bucket: string, key: string | undefined, resource: string): string;
      putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5?: string): Promise<void>;
      putObject(object: S3Object): Promise<{ size: number; md5: string }>;
      putPart(bucket: string, uploadId: string, partNumber: string | number, content: Readable): Promise<{ size: number; md5: string }>;
      listObjects(
        bucket: string,
        options: { prefix?: string; delimiter?: string; startAfter?: string; maxKeys?: number },
      ): Promise<{ objects: S3Object[]; commonPrefixes: string[]; isTruncated: boolean }>;
    }
  }

  class S3rver {
    constructor(options?: S3rver.Options);
    store: S3rver.FilesystemStore;
    httpServer?: Server;
    /** Creates the configured buckets, listens, resolves with the bound address. */
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }

  export = S3rver;
}
