//! Parsing of the limit flags in the forms Docker users type.

use super::CgroupError;

/// The kernel refuses a CFS quota under 1 ms of a 100 ms period; Docker's minimum is the same.
pub const MIN_CPUS: f64 = 0.01;
/// Far beyond any machine; keeps a typo from building an absurd bitmap.
const MAX_CPU_INDEX: usize = 8191;

/// Parses a size like Docker's `units.RAMInBytes`: a number (decimals allowed), an optional
/// space, then an optional binary unit `b k m g t p`, optionally followed by `i` and/or `b`
/// ("10m", "10MB", "10MiB", "1.5g", "1024b", "1048576"). Units are powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, CgroupError> {
    let bad =
        |reason: &str| CgroupError::InvalidValue { flag: "--memory", value: s.to_string(), reason: reason.to_string() };
    let t = s.trim();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, rest) = t.split_at(num_end);
    if num.is_empty()
        || !num.starts_with(|c: char| c.is_ascii_digit())
        || num.ends_with('.')
        || num.matches('.').count() > 1
    {
        return Err(bad("expected a number followed by an optional unit b, k, m, g, t or p"));
    }
    let unit = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        "t" | "tb" | "ti" | "tib" => 40,
        "p" | "pb" | "pi" | "pib" => 50,
        _ => return Err(bad("unknown unit (use b, k, m, g, t or p)")),
    };
    let mult = 1u64 << shift;
    match num.split_once('.') {
        None => num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)).ok_or_else(|| bad("too large")),
        Some(_) => {
            let v = num.parse::<f64>().map_err(|_| bad("not a number"))? * mult as f64;
            // 2^64 is exactly representable; anything at or above it does not fit.
            if !v.is_finite() || v >= 18446744073709551616.0 {
                return Err(bad("too large"));
            }
            Ok(v as u64)
        }
    }
}

/// Parses `--cpus`: a plain decimal number of CPUs ("0.5", "2"), at least 0.01.
/// The upper bound (CPUs on this host) is checked when the group is created.
pub fn parse_cpus(s: &str) -> Result<f64, CgroupError> {
    let bad =
        |reason: &str| CgroupError::InvalidValue { flag: "--cpus", value: s.to_string(), reason: reason.to_string() };
    let t = s.trim();
    // Plain decimals only: f64::from_str would also take "inf", "NaN" and "1e3".
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == '.') || t.matches('.').count() > 1 || t == "." {
        return Err(bad("expected a decimal number such as 0.5 or 2"));
    }
    let v: f64 = t.parse().map_err(|_| bad("not a number"))?;
    if v < MIN_CPUS {
        return Err(bad("must be at least 0.01"));
    }
    Ok(v)
}

/// Parses a CPU list ("0-2,4") into sorted, de-duplicated CPU numbers.
pub fn parse_cpuset(s: &str) -> Result<Vec<usize>, CgroupError> {
    let bad = |reason: String| CgroupError::InvalidValue { flag: "--cpuset-cpus", value: s.to_string(), reason };
    let num = |p: &str| -> Result<usize, CgroupError> {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad(format!("{p:?} is not a CPU number")));
        }
        match p.parse::<usize>() {
            Ok(n) if n <= MAX_CPU_INDEX => Ok(n),
            _ => Err(bad(format!("CPU {p} is out of range"))),
        }
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad("empty CPU list".into()));
    }
    let mut cpus = Vec::new();
    for part in t.split(',') {
        match part.split_once('-') {
            None => cpus.push(num(part)?),
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad(format!("range {part} is reversed")));
                }
                cpus.extend(a..=b);
            }
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// The kernel's list form of a CPU set: `[0,1,2,4]` → "0-2,4".
pub fn format_cpuset(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_docker_forms() {
        let cases: &[(&str, u64)] = &[
            ("1048576", 1 << 20),
            ("1024b", 1024),
            ("1024B", 1024),
            ("512k", 512 << 10),
            ("512K", 512 << 10),
            ("10m", 10 << 20),
            ("10M", 10 << 20),
            ("10mb", 10 << 20),
            ("10MiB", 10 << 20),
            ("10 m", 10 << 20),
            ("1g", 1 << 30),
            ("1GB", 1 << 30),
            ("2t", 2 << 40),
            ("1.5g", 3 << 29),
            ("0.5k", 512),
            ("0", 0),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size(s).unwrap(), *want, "{s}");
        }
    }

    #[test]
    fn bad_sizes() {
        for s in [
            "",
            "m",
            "-1m",
            "10x",
            "10mm",
            "1.2.3m",
            "1.m",
            ".5m",
            "10  m",
            "ten",
            "99999999999999999999",
            "16777216t",
            "1e3",
        ] {
            assert!(parse_size(s).is_err(), "{s:?} should be refused");
        }
        let msg = parse_size("10x").unwrap_err().to_string();
        assert!(msg.contains("10x") && msg.contains("unit"), "{msg}");
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("0.5").unwrap(), 0.5);
        assert_eq!(parse_cpus("2").unwrap(), 2.0);
        assert_eq!(parse_cpus("0.01").unwrap(), 0.01);
        for s in ["", "0", "0.001", "-1", "inf", "NaN", "1e3", "1,5", ".", "1.2.3", "two"] {
            let e = parse_cpus(s).expect_err(s);
            assert!(e.to_string().starts_with("--cpus"), "{e}");
        }
    }

    #[test]
    fn cpusets() {
        assert_eq!(parse_cpuset("0").unwrap(), vec![0]);
        assert_eq!(parse_cpuset("0-2,4").unwrap(), vec![0, 1, 2, 4]);
        assert_eq!(parse_cpuset("4,0-1,1").unwrap(), vec![0, 1, 4]);
        for s in ["", ",", "0,", "a", "2-1", "0-", "-1", "1 ,2", "99999", "0-99999"] {
            let e = parse_cpuset(s).expect_err(s);
            assert!(e.to_string().starts_with("--cpuset-cpus"), "{e}");
        }
    }

    #[test]
    fn cpuset_round_trip() {
        assert_eq!(format_cpuset(&[0, 1, 2, 4]), "0-2,4");
        assert_eq!(format_cpuset(&[3]), "3");
        assert_eq!(format_cpuset(&[0, 2, 3, 5, 6, 7]), "0,2-3,5-7");
        assert_eq!(format_cpuset(&[]), "");
    }
}
