//! Checksummed frames in append-only segment files: the record format shared
//! by the span log (`pipeline::segments`) and the recent-trace store
//! ([`super::traces`]). A frame is the payload's length (u32 LE), the CRC-32
//! of the payload (u32 LE), then the payload. A segment file is named by a
//! number (`{n:020}.seg`); a torn or corrupt tail is cut at open.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes before the payload: length and CRC.
pub const HEADER: usize = 8;

/// Starts a frame at the end of `buffer`; the payload is then appended and
/// [`finish`] given the returned start.
pub fn begin(buffer: &mut Vec<u8>) -> usize {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; HEADER]);
    start
}

/// Writes the header of the frame begun at `start` (its payload is everything after it).
pub fn finish(buffer: &mut [u8], start: usize) {
    let payload = &buffer[start + HEADER..];
    let (len, crc) = (payload.len() as u32, crc32fast::hash(payload));
    buffer[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buffer[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// Reads the next frame's payload into `payload`: `Ok(None)` at a clean end,
/// `Err(())` when what follows is torn, corrupt or not within `sizes`.
/// On success returns the frame's length (header included).
pub fn read(reader: &mut impl Read, payload: &mut Vec<u8>, sizes: std::ops::RangeInclusive<usize>) -> Result<Option<usize>, ()> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match reader.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(()),
            Ok(n) => got += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(()),
        }
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4"));
    if !sizes.contains(&len) {
        return Err(());
    }
    payload.resize(len, 0);
    reader.read_exact(payload).map_err(|_| ())?;
    if crc32fast::hash(payload) != crc {
        return Err(());
    }
    Ok(Some(HEADER + len))
}

/// Checks the payload of one whole frame held in `frame` (as read back by
/// offset): the payload, or `None` when the bytes are not that frame.
pub fn check(frame: &[u8]) -> Option<&[u8]> {
    let len = u32::from_le_bytes(frame.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(frame.get(4..HEADER)?.try_into().ok()?);
    let payload = frame.get(HEADER..HEADER + len)?;
    (frame.len() == HEADER + len && crc32fast::hash(payload) == crc).then_some(payload)
}

/// Reads `path` frame by frame, calling `each(offset, payload)` for every good
/// one until it returns false, and truncates the file after the last good
/// frame (logged with how much, as `what`). Returns the good length.
pub fn scan_and_repair(
    path: &Path,
    sizes: std::ops::RangeInclusive<usize>,
    what: &str,
    mut each: impl FnMut(u64, &[u8]) -> bool,
) -> std::io::Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let total = file.metadata()?.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, &mut file);
    let mut good = 0u64;
    let mut payload = Vec::new();
    while let Ok(Some(bytes)) = read(&mut reader, &mut payload, sizes.clone()) {
        if !each(good, &payload) {
            break;
        }
        good += bytes as u64;
    }
    drop(reader);
    if good < total {
        file.set_len(good)?;
        file.sync_all()?;
        tracing::warn!(segment = %path.display(), kept = good, truncated = total - good, "torn or corrupt tail of {what} truncated");
    }
    Ok(good)
}

pub fn segment_name(number: u64) -> String {
    format!("{number:020}.seg")
}

/// The segments in `dir`, by number.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let number =
            path.file_name().and_then(|name| name.to_str()).and_then(|name| name.strip_suffix(".seg")).and_then(|n| n.parse().ok());
        if let Some(number) = number {
            segments.push((number, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Makes a file's creation, rename or removal in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
