/** Composition root: builds every part from the config, starts them in order, stops them in reverse. */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { systemClock, type Clock } from './util/clock.js';
import { SegmentStore } from './capture/segment-store.js';
import { CapturePipeline } from './capture/pipeline.js';
import { RecordingsCatalog } from './device/catalog.js';
import { Recorder } from './device/recorder.js';
import { StorageGuard } from './device/storage.js';
import { Device } from './device/device.js';
import { UploadQueue } from './device/upload-queue.js';
import { resolveDeviceId } from './device/identity.js';
import { statfsDisk, type DiskSpace } from './hw/disk.js';
import { SystemClockStatus, type ClockStatusReader } from './hw/clock-status.js';
import { ChronyClockStatus } from './hw/chrony.js';
import { ClockMonitor } from './hw/clock-monitor.js';
import { createAdvertiser, type Advertiser } from './hw/mdns.js';
import { MultiCamServer } from './protocols/multicam/server.js';
import { buildHttpServer } from './http/server.js';
import { ClipStore } from './device/clips.js';
import { SessionBook } from './device/sessions.js';
import { PairingStore } from './device/pairing-store.js';
import { VarDevice } from './device/var-device.js';
import { VarNode } from './protocols/var/node.js';
import { VarClient } from './protocols/var/client.js';
import { Snapshotter } from './media/snapshot.js';
import { PreviewHub } from './media/preview.js';
import { SystemFactsPoller, SiSystemFacts, factWarnings, type SystemFactsReader } from './hw/system-facts.js';
import { APP_VERSION } from './version.js';
import { SystemCameraDiscovery, type CameraDiscovery } from './hw/cameras.js';
import { FfmpegEncoderProber, type EncoderProber } from './hw/encoder-probe.js';
import { listsOf, NoCameraError, resolveCapture } from './hw/camera-choice.js';
import type { CameraFinder } from './capture/pipeline.js';
import { LocalControls, startPanel, varLinkUp, type Panel } from './device/local-marks.js';
import type { GpioBackend } from './hw/gpio.js';

/** Hardware and OS seams; tests pass fakes only where the hardware does not exist. */
export interface AppSeams {
  /** Aborting it during start-up stops what was started and rejects startApp. */
  signal?: AbortSignal;
  clock?: Clock;
  disk?: DiskSpace;
  clockReader?: ClockStatusReader;
  /** Battery, temperature, Wi-Fi (systeminformation + sysfs by default). */
  systemFacts?: SystemFactsReader;
  /** USB/CSI camera listing for camera.source auto/v4l2/rpicam (default: v4l2-ctl, rpicam-hello). */
  cameras?: CameraDiscovery;
  /** Which H.264 encoder works, for encoder.codec auto (default: a trial encode with ffmpeg). */
  encoderProber?: EncoderProber;
  /** Button and LED pins (default: onoff when the board has GPIO). */
  gpio?: GpioBackend;
}

/** A running unit. */
export interface App {
  deviceId: string;
  device: Device;
  capture: CapturePipeline;
  store: SegmentStore;
  multicamPort: number;
  httpPort: number;
  clips: ClipStore;
  varNode: VarNode;
  varClient: VarClient;
  /** Battery, temperature, Wi-Fi, throttling flags (polled every 10 s; refresh() reads now). */
  facts: SystemFactsPoller;
  /** Orderly shutdown: stop accepting, finish a running recording, stop capture. */
  stop(): Promise<void>;
}

/** Start the whole unit. A failure part-way stops what was already started. */
export async function startApp(config: Config, log: Logger, seams: AppSeams = {}): Promise<App> {
  const clock = seams.clock ?? systemClock;
  const dataDir = resolve(config.dataDir);
  const stops: Array<[string, () => Promise<unknown>]> = [];
  const stopAll = async () => {
    for (const [name, fn] of stops.reverse()) {
      await fn().catch((err) => log.error({ part: name, err: (err as Error).message }, 'error while stopping'));
    }
    stops.length = 0;
  };
  try {
    await mkdir(dataDir, { recursive: true });
    const deviceId = await resolveDeviceId(config.deviceId, dataDir);
    log.info({ deviceId, dataDir, camera: config.camera.source }, 'arenacam starting');
    // camera.source and encoder.codec "auto" are decided once, here; every part below sees the result.
    // No camera at all is not fatal: the unit comes up, reports it as the capture error and capture
    // looks again with its restart backoff. Other resolution errors are config errors and stop start-up.
    const discovery = seams.cameras ?? new SystemCameraDiscovery({ v4l2ctlPath: config.camera.v4l2ctlPath, rpicamHelloPath: config.camera.rpicamHelloPath });
    const prober = seams.encoderProber ?? new FfmpegEncoderProber({ ffmpegPath: config.capture.ffmpegPath, timeoutMs: config.encoder.probeTimeoutMs, bitrateKbps: config.encoder.bitrateKbps });
    const wanted = config;
    const resolveNow = () => resolveCapture(wanted, { lists: listsOf(discovery), prober, log: log.child({ part: 'camera' }) });
    let findCamera: CameraFinder | undefined;
    try {
      const resolved = await resolveNow();
      config = { ...config, camera: resolved.camera, encoder: resolved.encoder };
    } catch (err) {
      if (!(err instanceof NoCameraError)) throw err;
      log.error({ err: err.message }, 'no camera found; the unit starts without capture and keeps looking for one');
      findCamera = { error: err.message, find: async () => resolveNow() };
    }

    const reader =
      seams.clockReader ??
      (config.clock.source === 'system'
        ? new SystemClockStatus(() => clock.now())
        : new ChronyClockStatus({ chronycPath: config.clock.chronycPath, socket: config.clock.chronySocket, maxOffsetMs: config.clock.maxOffsetMs, timeMaster: config.clock.timeMaster }));
    if (config.clock.source === 'system') log.warn('clock.source=system: the OS clock is trusted as synchronised; use chrony on a real unit');
    const step = () => seams.signal?.throwIfAborted();
    const clockMonitor = new ClockMonitor({ reader, pollMs: config.clock.pollMs, log: log.child({ part: 'clock' }) });
    await clockMonitor.refresh();
    clockMonitor.start();
    stops.push(['clock', async () => clockMonitor.stop()]);

    step();
    const store = new SegmentStore(join(dataDir, 'segments'), { ffprobePath: config.capture.ffprobePath, log: log.child({ part: 'store' }) });
    let recording = () => false;
    let clipsIdle = (): boolean => true;
    const capture = new CapturePipeline({ config, store, clock, log: log.child({ part: 'capture' }), mayRotate: (): boolean => !recording() && clipsIdle(), findCamera });
    await capture.reapStale();
    await store.load();
    const catalog = new RecordingsCatalog(join(dataDir, 'recordings'), log.child({ part: 'catalog' }));
    await catalog.load();
    const recorder = new Recorder({
      dataDir,
      store,
      catalog,
      clock,
      log: log.child({ part: 'recorder' }),
      ffmpegPath: config.capture.ffmpegPath,
      segmentSec: config.segments.durationSec,
      captureAlive: () => capture.status().alive,
    });
    const leftovers = await recorder.load();
    const clips = new ClipStore({
      dir: join(dataDir, 'clips'),
      store,
      ffmpegPath: config.capture.ffmpegPath,
      segmentSec: config.segments.durationSec,
      previewWidth: config.clips.previewWidth,
      previewBitrateKbps: config.clips.previewBitrateKbps,
      captureAlive: () => capture.status().alive,
      clock,
      log: log.child({ part: 'clips' }),
    });
    await clips.load();
    clipsIdle = () => clips.protectFromMs() === Infinity;
    const book = new SessionBook(dataDir);
    const crashed = await book.load();
    if (crashed) {
      log.warn({ sessionId: crashed.sessionId }, 'a VAR session was open when the unit stopped; its recording is recovered with the others');
      await book.close(crashed, null, null);
    }
    const uploads = new UploadQueue({ dataDir, catalog, settings: config.upload, clock, log: log.child({ part: 'upload' }) });
    await uploads.load();
    const lastEndMs = store.latestEndMs();

    step();
    let device: Device | null = null;
    const storage = new StorageGuard({
      dataDir,
      store,
      disk: seams.disk ?? statfsDisk,
      minFreeBytes: config.storage.minFreeMB * 1e6,
      retentionMs: config.segments.retentionMinutes * 60000,
      checkMs: config.storage.checkMs,
      protectFromMs: () => Math.min(recorder.protectFromMs(), clips.protectFromMs()),
      housekeeping: () => clips.expire(config.clips.keepDeliveredHours * 3600e3),
      reclaim: (need) => clips.reclaim(need),
      onFull: async (reason) => device?.stopForStorage(reason),
      clock,
      log: log.child({ part: 'storage' }),
    });
    // Battery, temperature, Wi-Fi and the Pi's throttling flags, for both protocols and /health.
    const facts = new SystemFactsPoller({ reader: seams.systemFacts ?? new SiSystemFacts({ log: log.child({ part: 'sysinfo' }) }), log: log.child({ part: 'sysinfo' }) });
    await facts.refresh();
    facts.start();
    stops.push(['sysinfo', async () => facts.stop()]);
    device = new Device({
      battery: () => facts.current().battery,
      deviceId,
      deviceType: config.deviceType,
      store,
      catalog,
      recorder,
      storage,
      capture,
      uploads,
      clockStatus: clockMonitor,
      clock,
      log: log.child({ part: 'device' }),
    });
    const dev = device;
    recording = () => dev.isRecording() || dev.snapshot().scheduledStartMs !== null;
    capture.on('health', (h) => {
      if (h.alive) log.info('capture healthy');
      else if (h.error) log.warn({ error: h.error }, 'capture unhealthy');
    });
    await capture.start();
    stops.push(['capture', () => capture.stop()]);
    if (leftovers.length) await dev.recover(leftovers, lastEndMs);
    storage.start();
    stops.push(['storage', () => storage.stop()]);
    const retry = setInterval(() => void dev.retryPending(), 30000);
    retry.unref();
    stops.push(['retry', async () => clearInterval(retry)]);
    stops.push(['device', () => dev.close()]);
    uploads.start();
    stops.push(['uploads', () => uploads.stop()]);

    const varDevice = new VarDevice({
      device: dev,
      capture,
      store,
      clips,
      book,
      storage,
      facts,
      camera: config.camera,
      markClock: config.var.markClock as 'device' | 'coordinator',
      minFreeBytes: config.storage.minFreeMB * 1e6,
      segmentSec: config.segments.durationSec,
      clock,
      log: log.child({ part: 'var' }),
    });

    step();
    const multicam = new MultiCamServer({ ...config.multicam, device: dev, clock, log: log.child({ part: 'multicam' }) });
    const { port: multicamPort } = await multicam.listen();
    stops.push(['multicam', () => multicam.close()]);

    step();
    const snapshot = new Snapshotter({ store, ffmpegPath: config.capture.ffmpegPath, log: log.child({ part: 'snapshot' }), clock });
    const preview = new PreviewHub({ store, ffmpegPath: config.capture.ffmpegPath, log: log.child({ part: 'preview' }) });
    stops.push(['preview', async () => preview.close()]);
    let varClient: VarClient | null = null;
    let panel: Panel | null = null;
    let unitReady = false;
    let varNode: VarNode | null = null;
    const http = buildHttpServer({
      log: log.child({ part: 'http' }),
      clips,
      snapshot,
      preview,
      listClips: () =>
        clips.listing((markId) => {
          const m = book.findMark(markId);
          return m ? (config.var.markClock === 'coordinator' && m.coordinatorTs !== null ? m.coordinatorTs : m.deviceTs) : null;
        }),
      health: () => {
        const cap = capture.status();
        const cs = clockMonitor.current();
        const st = dev.state();
        const snap = dev.snapshot();
        return {
          ok: cap.alive && !storage.error(),
          deviceId,
          state: st.state,
          message: st.message,
          capture: cap,
          clock: cs,
          storage: { freeMB: storage.freeBytes() === null ? null : Math.round(storage.freeBytes()! / 1e6), error: storage.error() },
          recording: dev.isRecording(),
          uploads: { queued: snap.uploadQueue.length, failed: snap.failedUploadQueue.length, uploading: uploads.busy() },
          coordinator: varNode && varClient ? { ...varClient.view(), ...varNode.view() } : null,
          clips: clips.usage(),
          gpio: panel?.view() ?? null,
          system: { ...facts.current(), warnings: factWarnings(facts.current()), sinceBoot: factWarnings(facts.current(), 'past') },
        };
      },
    });
    await http.listen({ port: config.http.port, host: config.http.host });
    const httpPort = (http.server.address() as { port: number }).port;
    stops.push(['http', () => http.close()]);

    // Button and status LED: after the listeners, so a press finds everything it needs.
    step();
    const controls = new LocalControls({
      device: dev,
      varSession: () => varDevice.current(),
      // A local recording is for standalone use: refused while a coordinator or controller is in charge.
      varLink: () => (varClient && varNode ? varLinkUp(varClient.view(), varNode.view()) : null),
      controllerLastCommandMs: () => multicam.lastCommandAtMs(),
      clips,
      book,
      storage,
      bitrateKbps: () => capture.currentProfile().bitrateKbps,
      minFreeBytes: config.storage.minFreeMB * 1e6,
      preRollMs: config.clips.preRollMs,
      postRollMs: config.clips.postRollMs,
      clock,
      log: log.child({ part: 'button' }),
    });
    const unitView = () => {
      const cap = capture.status();
      return { ready: unitReady, captureAlive: cap.alive, captureError: cap.error, storageError: storage.error(), recording: dev.isRecording(), uploading: uploads.busy(), clockSynchronised: clockMonitor.current().synchronised };
    };
    const gpioPanel = await startPanel({ settings: config.gpio, backend: seams.gpio, controls, unitView, clock, log: log.child({ part: 'gpio' }) });
    panel = gpioPanel;
    stops.push(['gpio', () => gpioPanel.stop()]);

    step();
    const pairing = new PairingStore(dataDir, config.var.coordinator, () => clock.now(), log.child({ part: 'var' }));
    await pairing.load();
    const node = new VarNode({
      deviceId,
      deviceName: config.var.deviceName ?? `arenacam-${deviceId.slice(0, 4)}`,
      appVersion: APP_VERSION,
      maxMessageBytes: config.var.maxMessageBytes,
      httpPort: () => httpPort,
      advertisedHost: config.var.advertisedHost,
      device: varDevice,
      pairing,
      now: () => clock.now(),
      log: log.child({ part: 'var' }),
    });
    node.setAssignedName(pairing.assignedName());
    varDevice.onSessionEnded((sessionId, stoppedAtMs, fileName) => node.sessionEnded(sessionId, stoppedAtMs, fileName));
    const client = new VarClient({
      node,
      target: async () => {
        await pairing.reloadLink();
        const t = pairing.target();
        // Without a key or a token there is nothing to say to the coordinator: wait for a link.
        return t && (pairing.key() || t.token) ? t : null;
      },
      reconnectMinMs: config.var.reconnectMinMs,
      reconnectMaxMs: config.var.reconnectMaxMs,
      statusIntervalMs: config.var.statusIntervalMs,
      log: log.child({ part: 'var' }),
    });
    varNode = node;
    varClient = client;
    client.start();
    stops.push(['var', () => client.stop()]);
    // Stopped before the link: clips cut short at shutdown can still be announced.
    stops.push(['clips', () => clips.close()]);

    step();
    if (config.mdns.enabled) {
      const adv: Advertiser = createAdvertiser({ deviceId, port: multicamPort, log: log.child({ part: 'mdns' }), backend: config.mdns.backend as 'auto' });
      await adv.start();
      stops.push(['mdns', () => adv.stop()]);
    }
    step();
    unitReady = true;
    log.info({ deviceId, multicamPort, httpPort }, 'arenacam ready');
    return {
      deviceId,
      device: dev,
      capture,
      store,
      multicamPort,
      httpPort,
      clips,
      varNode: node,
      varClient: client,
      facts,
      stop: async () => {
        log.info('arenacam stopping');
        await stopAll();
        log.info('arenacam stopped');
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
