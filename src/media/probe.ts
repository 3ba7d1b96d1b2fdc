/** ffprobe helpers: first/last timestamps of a media file, duration. */
import { execa } from 'execa';

/** First packet pts and the end (last pts + its duration) of a file's video stream, in seconds. */
export async function probeTimes(path: string, ffprobePath: string): Promise<{ firstPts: number; endPts: number }> {
  const { stdout } = await execa(
    ffprobePath,
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time,duration_time', '-of', 'csv=p=0', path],
    { timeout: 20000 },
  );
  let first = Infinity;
  let end = -Infinity;
  let last = 0;
  let count = 0;
  for (const line of stdout.split('\n')) {
    const [pts, dur] = line.split(',');
    const p = Number(pts);
    if (!pts || !Number.isFinite(p)) continue;
    count++;
    const d = Number(dur);
    first = Math.min(first, p);
    if (p >= end - (Number.isFinite(d) ? d : 0)) last = p;
    end = Math.max(end, p + (Number.isFinite(d) && d > 0 ? d : 0));
  }
  if (count === 0) throw new Error(`no video packets in ${path}`);
  if (end <= last) end = last + 1 / 30;
  return { firstPts: first, endPts: end };
}

/** Container duration in seconds as ffprobe reports it. */
export async function probeDuration(path: string, ffprobePath: string): Promise<number> {
  const { stdout } = await execa(ffprobePath, ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', path], {
    timeout: 20000,
  });
  return Number(stdout.trim());
}
