//! A bundle's config.json → `Spec`, with every refusal in one line naming the field
//! (`process.user.uid: invalid type ...`), before anything is made.
//!
//! serde reports a line and column, not a field: [`json_path_at`] walks the text up to that point
//! to name the field, so a typo in a 200-line config.json points at its key.
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::error::{OciError, Result};

/// A parsed, checked bundle.
pub struct Bundle {
    /// Absolute.
    pub dir: PathBuf,
    pub spec: Spec,
    /// root.path joined to the bundle directory.
    pub rootfs: PathBuf,
}

/// Loads `<bundle>/config.json` and checks what engine needs of it.
pub fn load(bundle: &Path) -> Result<Bundle> {
    let bundle_err = |reason: String| OciError::Bundle { path: bundle.to_path_buf(), reason };
    // Absolute but not resolved (runc's filepath.Abs): the state and the hooks report the
    // bundle as the caller named it.
    let dir = std::path::absolute(bundle).map_err(|e| bundle_err(e.to_string()))?;
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bundle_err("not a directory".into())),
        Err(e) => return Err(bundle_err(e.to_string())),
    }
    let path = dir.join("config.json");
    let text = std::fs::read(&path).map_err(|e| bundle_err(format!("reading config.json: {e}")))?;
    let spec = parse(&text)?;
    check(&spec)?;
    let root =
        spec.root().as_ref().ok_or_else(|| OciError::config("root", "missing (engine needs a root filesystem)"))?;
    let rootfs = if root.path().is_absolute() { root.path().clone() } else { dir.join(root.path()) };
    if !rootfs.is_dir() {
        return Err(OciError::config("root.path", format!("{} is not a directory", rootfs.display())));
    }
    Ok(Bundle { dir, spec, rootfs })
}

/// config.json text → Spec; a syntax or type error names the field at fault.
pub fn parse(text: &[u8]) -> Result<Spec> {
    match serde_json::from_slice::<Spec>(text) {
        Ok(spec) => Ok(spec),
        Err(e) => {
            let reason = strip_position(&e.to_string());
            let field = if e.line() == 0 {
                "(document)".to_string()
            } else {
                let mut p = json_path_at(text, e.line(), e.column());
                // serde stops at the end of the object that lacks the field: the path is that
                // object's, not its last key's.
                if reason.starts_with("missing field") {
                    p = parent_path(&p);
                }
                if p.is_empty() {
                    "(document)".to_string()
                } else {
                    p
                }
            };
            Err(OciError::config(field, reason))
        }
    }
}

/// serde_json appends " at line L column C": the field name replaces it.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// What the spec demands beyond the types, and what engine does not do.
pub fn check(spec: &Spec) -> Result<()> {
    let v = spec.version();
    let major = v.split('.').next().unwrap_or("");
    if major != "1" {
        return Err(OciError::config("ociVersion", format!("{v:?} is not a 1.x runtime-spec version")));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| OciError::config("process", "missing (create needs a process to run)"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(OciError::config("process.args", "must hold at least the program"));
    }
    if !process.cwd().is_absolute() {
        return Err(OciError::config("process.cwd", format!("{} is not an absolute path", process.cwd().display())));
    }
    if let Some(hooks) = spec.hooks() {
        #[allow(deprecated)]
        let kinds = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (kind, list) in kinds {
            for (i, h) in list.iter().flatten().enumerate() {
                if !h.path().is_absolute() {
                    return Err(OciError::config(format!("hooks.{kind}[{i}].path"), "must be an absolute path"));
                }
                if h.timeout().is_some_and(|t| t <= 0) {
                    return Err(OciError::config(format!("hooks.{kind}[{i}].timeout"), "must be greater than zero"));
                }
            }
        }
    }
    if let Some(linux) = spec.linux() {
        let mut seen = Vec::new();
        for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
            if seen.contains(&ns.typ()) {
                return Err(OciError::config(format!("linux.namespaces[{i}]"), format!("{} given twice", ns.typ())));
            }
            seen.push(ns.typ());
        }
        let own_mounts = seen.contains(&oci_spec::runtime::LinuxNamespaceType::Mount);
        for (field, paths) in
            [("linux.maskedPaths", linux.masked_paths()), ("linux.readonlyPaths", linux.readonly_paths())]
        {
            for (i, p) in paths.iter().flatten().enumerate() {
                // A relative path has no meaning in the root (runc and crun refuse it too).
                if !p.starts_with('/') {
                    return Err(OciError::config(format!("{field}[{i}]"), format!("{p:?} is not an absolute path")));
                }
            }
            // runc's rule: in the caller's mount namespace the container's process could undo
            // any mask (and the masks would be the host's to see).
            if !own_mounts && paths.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(OciError::config(field, "needs a mount namespace of the container's own"));
            }
        }
    }
    Ok(())
}

/// `a.b[2].c` → `a.b[2]`; `a` → ``.
fn parent_path(p: &str) -> String {
    match p.rfind(['.', '[']) {
        Some(i) if p[i..].starts_with('[') || !p[..i].is_empty() => p[..i].to_string(),
        _ => String::new(),
    }
}

/// The JSON path (`process.user.uid`, `mounts[2].type`) of the value being read at `line`,
/// `column` (1-based, serde_json's numbering).
pub fn json_path_at(text: &[u8], line: usize, column: usize) -> String {
    enum Frame {
        Object { key: Option<String>, want_key: bool },
        Array { index: usize },
    }
    let mut stack: Vec<Frame> = Vec::new();
    let (mut l, mut c) = (1usize, 0usize);
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b == b'\n' {
            l += 1;
            c = 0;
        } else {
            c += 1;
        }
        if l > line || (l == line && c >= column) {
            break;
        }
        match b {
            b'{' => stack.push(Frame::Object { key: None, want_key: true }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { want_key, .. }) => *want_key = true,
                None => {}
            },
            b'"' => {
                // A string: read to its closing quote (escapes skipped), counting columns.
                let start = i + 1;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    if text[i] == b'\\' {
                        i += 1;
                        c += 1;
                    }
                    i += 1;
                    c += 1;
                }
                c += 1;
                if let Some(Frame::Object { key, want_key }) = stack.last_mut() {
                    if *want_key {
                        *key = Some(String::from_utf8_lossy(&text[start..i.min(text.len())]).into_owned());
                        *want_key = false;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for f in &stack {
        match f {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(json: &str) -> String {
        match parse(json.as_bytes()) {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let json = r#"{
  "ociVersion": "1.0.2",
  "process": {
    "cwd": "/",
    "args": ["sh"],
    "user": { "uid": "root", "gid": 0 }
  },
  "root": { "path": "rootfs" }
}"#;
        let e = err_of(json);
        assert!(e.starts_with("config.json: process.user.uid: invalid type: string \"root\""), "{e}");
        let json = r#"{"ociVersion":"1.0.2","mounts":[{"destination":"/a"},{"destination":5}]}"#;
        let e = err_of(json);
        assert!(e.starts_with("config.json: mounts[1].destination: invalid type"), "{e}");
    }

    #[test]
    fn a_missing_field_names_its_object() {
        let e = err_of(r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"]}}"#);
        assert_eq!(e, "config.json: process: missing field `user`");
        assert_eq!(parent_path("a.b[2].c"), "a.b[2]");
        assert_eq!(parent_path("a[1]"), "a");
        assert_eq!(parent_path("a"), "");
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = err_of("{\"ociVersion\": \"1.0.2\", \"process\": {\"cwd\": }");
        assert!(e.starts_with("config.json: process.cwd: expected value"), "{e}");
        let e = err_of("");
        assert!(e.starts_with("config.json: "), "{e}");
    }

    fn spec_of(json: &str) -> Spec {
        parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn semantic_checks() {
        let base = |extra: &str| {
            format!(
                r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}}},"root":{{"path":"rootfs"}}{extra}}}"#
            )
        };
        check(&spec_of(&base(""))).unwrap();
        let e = check(&spec_of(&base("").replace("1.0.2", "2.0.0"))).unwrap_err().to_string();
        assert_eq!(e, "config.json: ociVersion: \"2.0.0\" is not a 1.x runtime-spec version");
        let e = check(&spec_of(&base("").replace(r#""args":["sh"]"#, r#""args":[]"#))).unwrap_err().to_string();
        assert_eq!(e, "config.json: process.args: must hold at least the program");
        let e = check(&spec_of(&base(r#","hooks":{"createRuntime":[{"path":"/bin/true","timeout":0}]}"#)))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "config.json: hooks.createRuntime[0].timeout: must be greater than zero");
        let e = check(&spec_of(&base(r#","linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}"#)))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config.json: linux.namespaces[1]: "), "{e}");
        let ns = r#""namespaces":[{"type":"mount"}]"#;
        let e = check(&spec_of(&base(&format!(r#","linux":{{{ns},"maskedPaths":["/a","rel"]}}"#))))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "config.json: linux.maskedPaths[1]: \"rel\" is not an absolute path");
        let e =
            check(&spec_of(&base(&format!(r#","linux":{{{ns},"readonlyPaths":["x/y"]}}"#)))).unwrap_err().to_string();
        assert_eq!(e, "config.json: linux.readonlyPaths[0]: \"x/y\" is not an absolute path");
        check(&spec_of(&base(&format!(r#","linux":{{{ns},"maskedPaths":["/a"],"readonlyPaths":["/b"]}}"#)))).unwrap();
        let e = check(&spec_of(&base(r#","linux":{"maskedPaths":["/a"]}"#))).unwrap_err().to_string();
        assert_eq!(e, "config.json: linux.maskedPaths: needs a mount namespace of the container's own");
    }

    #[test]
    fn missing_bundle_and_root() {
        let e = load(Path::new("/nonexistent/bundle")).err().unwrap().to_string();
        assert!(e.starts_with("bundle /nonexistent/bundle: "), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},"root":{"path":"nope"}}"#,
        )
        .unwrap();
        let e = load(dir.path()).err().unwrap().to_string();
        assert!(e.starts_with("config.json: root.path: "), "{e}");
    }
}
