//! `User` of an image config or `--user`: `uid[:gid]` or `name[:group]`, names looked up in the
//! container's own /etc/passwd and /etc/group, as runc's `user.GetExecUser` does for Docker.
//!
//! The files are the container's, so they are read as the container would see them: in the
//! layers top first (a whiteout or a non-regular file hides the ones below), each resolved by
//! openat2 RESOLVE_IN_ROOT inside its layer, so a planted `etc -> /host/etc` link reads nothing
//! of the host.
use std::io::Read;
use std::path::PathBuf;

use super::Error;
use crate::container::safepath::Dir;

/// Beyond this a passwd or group file is refused rather than read into the supervisor.
const MAX_FILE: u64 = 4 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those listing the user as a member (only when no group is given).
    pub groups: Vec<u32>,
    /// The home directory of its /etc/passwd line: `HOME` unless the image or `-e` set one.
    pub home: Option<String>,
}

/// `/etc/passwd` or `/etc/group` of a root made of `layers` (top first; a directory root is one
/// layer); None when the container has none.
fn read_in_layers(layers: &[PathBuf], file: &str) -> Result<Option<String>, Error> {
    for layer in layers {
        let step = || format!("reading /{file} of the container in {}", layer.display());
        let root = Dir::root(layer).map_err(Error::io(step()))?;
        let entry = match root.file(file, false) {
            Ok(e) => e,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            // A whiteout (0:0 device), a directory, a fifo: the container sees no such file.
            Err(_) => return Ok(None),
        };
        let mut text = String::new();
        std::fs::File::open(entry.mount_path())
            .and_then(|f| f.take(MAX_FILE).read_to_string(&mut text))
            .map_err(Error::io(step()))?;
        return Ok(Some(text));
    }
    Ok(None)
}

/// `name:x:uid:gid:...` lines (and `name:x:gid:members` for groups): the fields of the line
/// whose first field or number matches `who`.
fn find<'a>(text: &'a str, who: &str) -> Option<Vec<&'a str>> {
    let numeric = who.parse::<u32>().ok();
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && (f[0] == who || (numeric.is_some() && f[2].parse::<u32>().ok() == numeric)))
}

/// Resolves `user` (`""` is root) against the root made of `layers`.
pub fn resolve_user(user: &str, layers: &[PathBuf]) -> Result<ExecUser, Error> {
    if user.is_empty() {
        return Ok(ExecUser::default());
    }
    let (who, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let invalid = |why: &str| Error::Invalid(format!("user {user:?}: {why}"));
    let passwd = if who.parse::<u32>().is_ok() && group.is_some_and(|g| g.parse::<u32>().is_ok()) {
        None // uid:gid needs no lookup, and works without any /etc/passwd.
    } else {
        read_in_layers(layers, "etc/passwd")?
    };
    let entry = passwd.as_deref().and_then(|t| find(t, who));
    let home = entry.as_ref().and_then(|f| f.get(5)).filter(|h| !h.is_empty()).map(|h| h.to_string());
    let (uid, mut gid, name) = match (&entry, who.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse::<u32>().map_err(|_| invalid("its /etc/passwd line has no numeric uid"))?,
            f.get(3).and_then(|g| g.parse::<u32>().ok()).unwrap_or(0),
            Some(f[0].to_string()),
        ),
        // A number the passwd file does not know is used as it is, with gid 0 (runc's rule).
        (None, Ok(n)) => (n, 0, None),
        (None, Err(_)) => return Err(invalid("no such user in the container's /etc/passwd")),
    };
    let group_file = || read_in_layers(layers, "etc/group");
    let mut groups = Vec::new();
    match group {
        Some("") => return Err(invalid("empty group")),
        Some(g) => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    let text = group_file()?.unwrap_or_default();
                    let f = find(&text, g).ok_or_else(|| invalid("no such group in the container's /etc/group"))?;
                    f[2].parse::<u32>().map_err(|_| invalid("its /etc/group line has no numeric gid"))?
                }
            };
        }
        None => {
            if let Some(name) = &name {
                let text = group_file()?.unwrap_or_default();
                for f in text.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 4) {
                    let member = f[3].split(',').any(|m| m.trim() == name);
                    if let (true, Ok(n)) = (member, f[2].parse::<u32>()) {
                        if n != gid && !groups.contains(&n) {
                            groups.push(n);
                        }
                    }
                }
            }
        }
    }
    Ok(ExecUser { uid, gid, groups, home })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(passwd: &str, group: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::create_dir(d.path().join("etc")).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(d.path().join("etc/passwd"), passwd).unwrap_or_else(|e| panic!("passwd: {e}"));
        std::fs::write(d.path().join("etc/group"), group).unwrap_or_else(|e| panic!("group: {e}"));
        d
    }

    #[test]
    fn names_numbers_and_groups() -> Result<(), Error> {
        let d = root(
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
            "app:x:1001:\nwheel:x:10:app,bob\n",
        );
        let layers = [d.path().to_path_buf()];
        assert_eq!(resolve_user("", &layers)?, ExecUser::default());
        assert_eq!(
            resolve_user("app", &layers)?,
            ExecUser { uid: 1000, gid: 1001, groups: vec![10], home: Some("/home/app".into()) }
        );
        assert_eq!(resolve_user("1000", &layers)?.groups, [10]);
        assert_eq!(resolve_user("app:wheel", &layers)?.gid, 10);
        assert_eq!(resolve_user("4242", &layers)?, ExecUser { uid: 4242, ..Default::default() });
        assert_eq!(resolve_user("7:8", &[])?, ExecUser { uid: 7, gid: 8, ..Default::default() });
        assert!(resolve_user("nobody", &layers).is_err());
        assert!(resolve_user("app:nogroup", &layers).is_err());
        Ok(())
    }

    #[test]
    fn a_link_out_of_the_layer_reads_nothing_of_the_host() -> Result<(), Error> {
        let d = tempfile::tempdir().map_err(Error::io("tempdir"))?;
        std::os::unix::fs::symlink("/etc", d.path().join("etc")).map_err(Error::io("symlink"))?;
        // The host's /etc/passwd has root; resolved inside the layer, the link leads nowhere.
        assert!(resolve_user("root", &[d.path().to_path_buf()]).is_err());
        Ok(())
    }
}
