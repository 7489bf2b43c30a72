//! `--file` / `--mount`: secret values as 0400 files, on tmpfs unless
//! `--allow-non-tmpfs`. Files are written to a temporary name and renamed into place,
//! so a reader never sees half a value.

use super::plan::SecretFile;
use anyhow::Context as _;
use std::io::Write as _;
use std::path::Path;

/// Refuses a directory that does not exist or (unless allowed) is not on tmpfs.
pub(crate) fn check_dir(dir: &Path, allow_non_tmpfs: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        dir.is_dir(),
        "secret file directory {} does not exist",
        dir.display()
    );
    if allow_non_tmpfs {
        return Ok(());
    }
    let fs = nix::sys::statfs::statfs(dir)
        .with_context(|| format!("checking the file system of {}", dir.display()))?;
    anyhow::ensure!(
        fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC,
        "{} is not on tmpfs, so secret files would land on a disk; mount a tmpfs there \
         or pass --allow-non-tmpfs",
        dir.display()
    );
    Ok(())
}

/// Writes every file with mode 0400.
pub(crate) fn write_all(files: &[SecretFile]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    for f in files {
        let dir = f.path.parent().unwrap_or(Path::new("/"));
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(f.path.file_name().unwrap_or_default());
        tmp_name.push(format!(".envseal-{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        let result = (|| -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .open(&tmp)?;
            file.write_all(f.value.expose())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &f.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.with_context(|| format!("writing {} to {}", f.name, f.path.display()))?;
    }
    Ok(())
}
