//! The one rule for a container's name (and an OCI container id): Docker's
//! `[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}`. It also makes the name safe as a path component (cgroup,
//! record file, overlay directory, state directory): no '/', never "." or "..".

/// The longest name: Docker's limit, and short enough for a veth alias or a file name.
pub const MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid container name {0:?}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,63}}")]
pub struct InvalidName(pub String);

pub fn validate(name: &str) -> Result<(), InvalidName> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..].iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["a", "A9", "web-1.db_2", &"x".repeat(64), &"0123456789abcdef".repeat(4)] {
            assert!(validate(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "_a", ".", "..", "a b", "a/b", &"x".repeat(65), "é", "a\0"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }
}
