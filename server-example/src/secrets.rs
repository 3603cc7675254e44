//! Secrets the embedded configuration keeps in files under `data_dir`
//! (created on first start), for what has no configured secret.

use std::path::Path;

use crate::error::StartupError;

/// A 32-byte random secret kept in `path` (created with mode 0600 when missing).
pub fn secret_file(path: &Path) -> Result<Vec<u8>, StartupError> {
    if let Ok(s) = std::fs::read(path)
        && s.len() >= 32
    {
        return Ok(s);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StartupError::Config(format!("no randomness: {e}")))?;
    let hexed = hex::encode(bytes).into_bytes();
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(&tmp)?.write_all(&hexed)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(hexed)
}
