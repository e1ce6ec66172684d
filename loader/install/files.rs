//! Files replaced the way a reader never sees half of one: the new content goes to a temporary
//! file in the same directory (a `.tmp` name no runtime loads), is synced with its mode set, and
//! is renamed over the old file, whose readers and executors keep the old inode; then the
//! directory is synced so the rename survives a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes what `fill` writes to `path` as one step, with mode `mode`.
pub fn replace(
    path: &Path,
    mode: u32,
    fill: &mut dyn FnMut(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = temp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    let written = (|| {
        fill(&mut file)?;
        file.flush()?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// `.NAME.dnsredir-PID.tmp` beside `path`: hidden, and of no extension a runtime reads.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.dnsredir-{}.tmp", std::process::id()))
}

/// Reads a small file whole: at most `max` bytes (a CNI configuration is a few KiB).
pub fn read_small(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    // O_NONBLOCK: a FIFO named there is refused below instead of waited on.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} KiB", max >> 10),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dnsredir-files-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn a_replaced_file_has_the_new_bytes_and_mode_and_no_temp_is_left() {
        let dir = scratch("replace");
        let path = dir.join("10-net.conflist");
        fs::write(&path, "old").unwrap();
        replace(&path, 0o644, &mut |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let failed = replace(&path, 0o644, &mut |_| Err(io::Error::other("disk full")));
        assert!(failed.is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "new", "untouched");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("10-net.conflist")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn small_files_only() {
        let dir = scratch("small");
        let path = dir.join("a");
        fs::write(&path, [b'x'; 100]).unwrap();
        assert_eq!(read_small(&path, 100).unwrap().len(), 100);
        assert!(read_small(&path, 99)
            .unwrap_err()
            .to_string()
            .contains("larger"));
        assert!(read_small(&dir, 99).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
