//! The edit list of an MP4/MOV audio track, for gapless trimming.
//!
//! symphonia's MP4 reader parses `elst` but does not apply it, so encoder delay
//! (AAC's 1024 priming frames, say) would stay at the start of the output. FFmpeg
//! applies the first non-empty edit: skip `media_time`, keep `segment_duration`.
//! We read just the boxes needed to do the same.

use std::io::{Read, Seek, SeekFrom};

/// First non-empty edit of the first sound track, in that track's media timescale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edit {
    pub skip: u64,
    pub duration: u64,
    pub media_timescale: u32,
}

const MAX_BOXES: usize = 100_000;

struct Walker<'a, R> {
    r: &'a mut R,
    boxes: usize,
}

impl<R: Read + Seek> Walker<'_, R> {
    /// Children of the box body `[start, end)`: (type, body start, body end).
    fn children(&mut self, start: u64, end: u64) -> Option<Vec<([u8; 4], u64, u64)>> {
        let mut out = Vec::new();
        let mut pos = start;
        while pos + 8 <= end {
            self.boxes += 1;
            if self.boxes > MAX_BOXES {
                return None;
            }
            self.r.seek(SeekFrom::Start(pos)).ok()?;
            let mut h = [0u8; 8];
            self.r.read_exact(&mut h).ok()?;
            let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
            let kind = [h[4], h[5], h[6], h[7]];
            let (body, size) = match size32 {
                0 => (pos + 8, end - pos),
                1 => {
                    let mut s = [0u8; 8];
                    self.r.read_exact(&mut s).ok()?;
                    (pos + 16, u64::from_be_bytes(s))
                }
                s => (pos + 8, s),
            };
            if size < body - pos || pos.checked_add(size)? > end {
                return None;
            }
            out.push((kind, body, pos + size));
            pos += size;
        }
        Some(out)
    }

    fn read(&mut self, at: u64, n: usize) -> Option<Vec<u8>> {
        self.r.seek(SeekFrom::Start(at)).ok()?;
        let mut v = vec![0u8; n];
        self.r.read_exact(&mut v).ok()?;
        Some(v)
    }

    fn find(&mut self, start: u64, end: u64, kind: &[u8; 4]) -> Option<(u64, u64)> {
        self.children(start, end)?.into_iter().find(|(k, _, _)| k == kind).map(|(_, s, e)| (s, e))
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads the edit of the first sound track; `None` when the input is not MP4,
/// has no edit list, or anything is malformed.
pub(crate) fn read_audio_edit<R: Read + Seek>(r: &mut R, len: u64) -> Option<Edit> {
    let mut w = Walker { r, boxes: 0 };
    let top = w.children(0, len)?;
    if !top.iter().any(|(k, _, _)| k == b"ftyp" || k == b"moov") {
        return None;
    }
    let (ms, me) = top.iter().find(|(k, _, _)| k == b"moov").map(|&(_, s, e)| (s, e))?;
    let moov = w.children(ms, me)?;
    let (vs, ve) = moov.iter().find(|(k, _, _)| k == b"mvhd").map(|&(_, s, e)| (s, e))?;
    let mvhd = w.read(vs, (ve - vs).min(32) as usize)?;
    let movie_ts = if mvhd[0] == 1 { be32(&mvhd, 20)? } else { be32(&mvhd, 12)? };
    for &(_, ts, te) in moov.iter().filter(|(k, _, _)| k == b"trak") {
        let Some((ds, de)) = w.find(ts, te, b"mdia") else { continue };
        let Some((hs, _)) = w.find(ds, de, b"hdlr") else { continue };
        if w.read(hs + 8, 4)? != b"soun" {
            continue;
        }
        let (mhs, mhe) = w.find(ds, de, b"mdhd")?;
        let mdhd = w.read(mhs, (mhe - mhs).min(32) as usize)?;
        let media_ts = if mdhd[0] == 1 { be32(&mdhd, 20)? } else { be32(&mdhd, 12)? };
        let (es, ee) = w.find(ts, te, b"edts")?;
        let (ls, le) = w.find(es, ee, b"elst")?;
        let elst = w.read(ls, (le - ls).min(1 << 16) as usize)?;
        let v1 = elst[0] == 1;
        let count = be32(&elst, 4)? as usize;
        let entry = if v1 { 20 } else { 12 };
        for i in 0..count {
            let at = 8 + i * entry;
            let (dur, media_time) = if v1 {
                (be64(&elst, at)?, be64(&elst, at + 8)? as i64)
            } else {
                (be32(&elst, at)? as u64, be32(&elst, at + 4)? as i32 as i64)
            };
            if media_time < 0 {
                continue; // an empty edit (inserted silence): not a trim
            }
            if movie_ts == 0 || media_ts == 0 {
                return None;
            }
            let duration = (dur as u128 * media_ts as u128 / movie_ts as u128) as u64;
            return Some(Edit { skip: media_time as u64, duration, media_timescale: media_ts });
        }
        return None;
    }
    None
}
