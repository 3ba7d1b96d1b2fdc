/** Configuration schema: every key, its type and its default, declared once. */

export type FieldType = 'string' | 'integer' | 'number' | 'boolean' | 'string[]' | 'string|null';

/** One leaf of the schema. */
export interface Field {
  type: FieldType;
  default: unknown;
  doc: string;
  enum?: readonly string[];
  min?: number;
  max?: number;
}

const f = <T extends FieldType>(type: T, def: unknown, doc: string, extra: Omit<Partial<Field>, 'type'> = {}): Field & { type: T } => ({
  ...extra,
  type,
  default: def,
  doc,
});

/** The schema tree; nested objects are sections, leaves are Fields. */
export const schema = {
  deviceId: f('string|null', null, 'Device id; null = generated once and kept in dataDir/device-id'),
  dataDir: f('string', './data', 'Folder for segments, recordings and state'),
  deviceType: f('string', 'arenacam', 'MultiCam deviceType (anything but "Oak"/"quest" files as exo)'),
  log: {
    level: f('string', 'info', 'pino log level', {
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    }),
  },
  multicam: {
    port: f('integer', 8080, 'MultiCam TCP port', { min: 0, max: 65535 }),
    host: f('string', '0.0.0.0', 'MultiCam listen address'),
    maxMessageBytes: f('integer', 65536, 'Largest accepted command', { min: 1024 }),
    receiveTimeoutMs: f('integer', 10000, 'Close a connection that sends no complete command', { min: 100 }),
    maxConnections: f('integer', 128, 'Concurrent connections before new ones are refused', { min: 1 }),
  },
  http: {
    port: f('integer', 9000, 'HTTP port (health, clips)', { min: 0, max: 65535 }),
    host: f('string', '0.0.0.0', 'HTTP listen address'),
  },
  mdns: {
    enabled: f('boolean', true, 'Advertise _multicam._tcp'),
    backend: f('string', 'auto', 'auto = avahi when avahi-daemon runs, else bonjour-service', {
      enum: ['auto', 'bonjour', 'avahi'],
    }),
  },
  camera: {
    source: f('string', 'testsrc', 'Camera source: testsrc (test pattern), v4l2 (USB/UVC), rpicam (CSI through rpicam-vid), ffmpeg (raw input arguments), auto (CSI if rpicam finds a camera, else the first USB camera)', { enum: ['testsrc', 'v4l2', 'rpicam', 'ffmpeg', 'auto'] }),
    width: f('integer', 1280, 'Capture width', { min: 16 }),
    height: f('integer', 720, 'Capture height', { min: 16 }),
    fps: f('integer', 30, 'Capture frame rate', { min: 1, max: 240 }),
    device: f('string', '/dev/video0', 'v4l2 device node (source v4l2; source auto finds the node itself)'),
    format: f('string', 'auto', 'v4l2 capture format: auto = the camera\'s own H.264 when it has it (stored as sent, see encoder.codec), else MJPEG, else raw YUYV; the size and rate closest to width/height/fps that the camera lists are used', { enum: ['auto', 'h264', 'mjpeg', 'yuyv'] }),
    input: f('string[]', [], 'For source "ffmpeg": raw ffmpeg input arguments, e.g. ["-f","rawvideo",...,"-i","/path"]'),
    latencyMs: f('number', 0, 'Known delay from exposure to the frame reaching ffmpeg (e.g. rpicam-vid\'s ISP and pipe, measured once with a clock in view); taken off every frame stamp', { min: 0, max: 1000 }),
    rpicamPath: f('string', 'rpicam-vid', 'rpicam-vid binary (source rpicam)'),
    rpicamHelloPath: f('string', 'rpicam-hello', 'rpicam-hello binary for listing CSI cameras (libcamera-hello is tried when it is missing)'),
    rpicamCamera: f('integer', 0, 'CSI camera index for rpicam-vid --camera (see arenacam cameras)', { min: 0, max: 15 }),
    v4l2ctlPath: f('string', 'v4l2-ctl', 'v4l2-ctl binary for listing USB cameras (without it: /sys/class/video4linux, formats unknown)'),
  },
  encoder: {
    codec: f('string', 'auto', 'Video encoder; auto = h264_v4l2m2m when a trial encode works (Pi 4), else libx264', { enum: ['auto', 'libx264', 'h264_v4l2m2m', 'copy'] }),
    bitrateKbps: f('integer', 4000, 'Target bitrate in kbit/s', { min: 100 }),
    preset: f('string', 'veryfast', 'libx264 preset (ultrafast or veryfast on a Pi)'),
    probeTimeoutMs: f('integer', 10000, 'Time limit of each ffmpeg run of the encoder probe (encoder.codec auto)', { min: 1000 }),
  },
  clock: {
    source: f('string', 'chrony', 'Clock status source; "system" trusts the OS clock (development only)', {
      enum: ['chrony', 'system'],
    }),
    chronycPath: f('string', 'chronyc', 'chronyc binary'),
    chronySocket: f('string|null', null, 'chronyd command socket (chronyc -h); null = chronyc default'),
    maxOffsetMs: f('number', 10, 'Largest |offset| still called synchronised', { min: 0 }),
    timeMaster: f('boolean', false, 'This unit is the arena\'s time reference (chrony serves its own clock: scripts/install.sh --serve-ntp without an upstream): a local chrony reference counts as synchronised'),
    pollMs: f('integer', 5000, 'How often the clock status is refreshed', { min: 100 }),
  },
  segments: {
    durationSec: f('number', 1, 'Segment length (one GOP each)', { min: 0.5, max: 10 }),
    retentionMinutes: f('number', 10, 'Pre-roll kept outside recordings', { min: 0.1 }),
  },
  storage: {
    minFreeMB: f('integer', 300, 'Below this, pre-roll is pruned and then recording stops', { min: 0 }),
    checkMs: f('integer', 2000, 'Free-space check interval', { min: 100 }),
  },
  upload: {
    s3Endpoint: f('string|null', null, 'S3-compatible endpoint for the IAM form (e.g. http://nas:9000); null = AWS S3 in the given region'),
    allowHttp: f('boolean', false, 'Allow plain-HTTP upload targets (presigned URLs and s3Endpoint); other schemes than https/http are always refused'),
    concurrency: f('integer', 1, 'Uploads running at once', { min: 1, max: 4 }),
    maxAttempts: f('integer', 3, 'Attempts per upload before it moves to failedUploadQueue (network errors, timeouts, 5xx)', { min: 1, max: 20 }),
    retryBaseMs: f('integer', 2000, 'First retry delay; doubles per attempt, with jitter', { min: 10 }),
    retryMaxMs: f('integer', 60000, 'Largest retry delay', { min: 10 }),
    timeoutMs: f('integer', 30000, 'An upload that makes no progress for this long is cut and retried', { min: 100 }),
    multipartThresholdMB: f('number', 8, 'IAM form: files larger than this (MiB) go up in parts', { min: 1 }),
    partSizeMB: f('number', 8, 'IAM form: part size in MiB (S3 needs at least 5 except the last part)', { min: 1, max: 5120 }),
    verifyMd5: f('string', 'auto', 'Hash what is sent and compare it with the ETag: auto = over plain http only (TLS already authenticates https)', {
      enum: ['auto', 'always', 'never'],
    }),
    maxBytesPerSecond: f('integer', 0, 'Upload bandwidth cap in bytes/s so Wi-Fi uploads do not starve capture; 0 = no cap', { min: 0 }),
  },
  var: {
    coordinator: f('string|null', null, 'VAR coordinator: ws://host:8765/ws, or a pairing link var://pair?host=…&port=…&token=… (also: arenacam pair <link>); null = no VAR link'),
    deviceName: f('string|null', null, 'Name shown to the coordinator; null = arenacam-<first 4 of deviceId>'),
    advertisedHost: f('string|null', null, 'Address put in clip URLs; null = this unit\'s address on the coordinator connection'),
    statusIntervalMs: f('integer', 2000, 'status message period', { min: 200 }),
    reconnectMinMs: f('integer', 500, 'First reconnect delay; doubles per failure, with jitter', { min: 10 }),
    reconnectMaxMs: f('integer', 30000, 'Largest reconnect delay', { min: 10 }),
    maxMessageBytes: f('integer', 65536, 'Largest message of a known type (larger: error TOO_LARGE, link kept); unknown types are ignored up to the 4 MiB frame cap', { min: 1024 }),
    markClock: f('string', 'device', 'Mark instant used for clip windows: device = this unit\'s clock at reception; coordinator = the mark\'s coordinatorTs', {
      enum: ['device', 'coordinator'],
    }),
  },
  clips: {
    preRollMs: f('integer', 10000, 'Clip window before a local (button) mark; request_clip without fromMs uses the coordinator default 10 s', { min: 0, max: 600000 }),
    postRollMs: f('integer', 5000, 'Clip window after a local (button) mark; request_clip without toMs uses the coordinator default 5 s', { min: 0, max: 600000 }),
    previewWidth: f('integer', 640, 'Width of quality "preview" clips (re-encoded H.264, height keeps the aspect)', { min: 16 }),
    previewBitrateKbps: f('integer', 1000, 'Bitrate of quality "preview" clips', { min: 100 }),
    keepDeliveredHours: f('number', 24, 'A clip downloaded in full is removed this long after (and earlier when space runs short); clips never downloaded are kept', { min: 0 }),
  },
  gpio: {
    enabled: f('boolean', true, 'Use the button and LED when the board has GPIO (without GPIO the unit runs and says so once)'),
    buttonPin: f('integer', 17, 'Button input, BCM number (-1 = no button)', { min: -1, max: 63 }),
    buttonActiveLow: f('boolean', true, 'Button pulls the pin to ground when pressed (needs a pull-up)'),
    ledPin: f('integer', 27, 'Status LED output, BCM number (-1 = no LED)', { min: -1, max: 63 }),
    ledActiveLow: f('boolean', false, 'LED lights when the pin is low'),
    debounceMs: f('integer', 30, 'A press or release must hold this long to count', { min: 0, max: 1000 }),
    longPressMs: f('integer', 2000, 'Held at least this long = long press', { min: 200, max: 30000 }),
    chipLabel: f('string|null', null, 'sysfs gpiochip label of the header pins; null = known Pi labels (pinctrl-rp1, pinctrl-bcm2711, pinctrl-bcm2835)'),
    sysfsDir: f('string', '/sys/class/gpio', 'sysfs GPIO folder'),
  },
  systemd: {
    captureGraceMs: f('integer', 60000, 'Watchdog pings stop when capture has been down this long, so systemd restarts the unit', { min: 1000 }),
  },
  capture: {
    restartMinMs: f('integer', 500, 'First restart delay after ffmpeg dies', { min: 10 }),
    restartMaxMs: f('integer', 30000, 'Largest restart delay', { min: 10 }),
    stopGraceMs: f('integer', 3000, 'SIGINT→SIGKILL grace for ffmpeg', { min: 10 }),
    ffmpegPath: f('string', 'ffmpeg', 'ffmpeg binary'),
    ffprobePath: f('string', 'ffprobe', 'ffprobe binary'),
  },
} as const;

type LeafType<F> = F extends { type: 'string' }
  ? string
  : F extends { type: 'integer' | 'number' }
    ? number
    : F extends { type: 'boolean' }
      ? boolean
      : F extends { type: 'string[]' }
        ? string[]
        : F extends { type: 'string|null' }
          ? string | null
          : never;

type ConfigOf<S> = { [K in keyof S]: S[K] extends Field ? LeafType<S[K]> : ConfigOf<S[K]> };

/** The validated configuration object. */
export type Config = ConfigOf<typeof schema>;
