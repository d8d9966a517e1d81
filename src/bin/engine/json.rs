//! Just enough JSON for the client's frames: writing a request into a fixed buffer, and reading a
//! top-level field of the supervisor's small answers (serde_json's output: a string never holds a
//! bare `"`, so `"key":` outside a string is found by a plain search).

/// A request being written into a fixed buffer; `full` once something did not fit.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    pub full: bool,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, len: 0, full: false }
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.full = true,
        }
    }

    /// `s` as a JSON string. Bytes that are not UTF-8 go as they are: the supervisor refuses
    /// the request, and the client then hands the command line over (see `main`).
    pub fn string(&mut self, s: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.raw(b"\"");
        for &b in s {
            match b {
                b'"' => self.raw(b"\\\""),
                b'\\' => self.raw(b"\\\\"),
                0..=0x1f => self.raw(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]),
                _ => self.raw(&[b]),
            }
        }
        self.raw(b"\"");
    }

    pub fn number(&mut self, n: i32) {
        let mut digits = [0u8; 12];
        let mut i = digits.len();
        let mut v = (n as i64).unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if n < 0 {
            i -= 1;
            digits[i] = b'-';
        }
        self.raw(&digits[i..]);
    }

    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Where the value of the top-level field `key` starts in `json`.
fn value_at(json: &[u8], key: &[u8]) -> Option<usize> {
    let pattern_len = key.len() + 3;
    (0..json.len().saturating_sub(pattern_len - 1)).find_map(|i| {
        let at = &json[i..i + pattern_len];
        (at[0] == b'"' && &at[1..=key.len()] == key && &at[key.len() + 1..] == b"\":").then_some(i + pattern_len)
    })
}

/// The raw bytes of the string field `key` (escapes left as they are).
pub fn string<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = value_at(json, key)?;
    let rest = json.get(at..)?.strip_prefix(b"\"")?;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'\\' => i += 2,
            b'"' => return Some(&rest[..i]),
            _ => i += 1,
        }
    }
    None
}

/// The integer field `key`.
pub fn integer(json: &[u8], key: &[u8]) -> Option<i32> {
    let rest = json.get(value_at(json, key)?..)?;
    let (negative, digits) = match rest.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, rest),
    };
    let mut value: i64 = 0;
    let mut any = false;
    for &b in digits.iter().take_while(|b| b.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add((b - b'0') as i64)?;
        any = true;
    }
    let value = if negative { -value } else { value };
    any.then(|| i32::try_from(value).ok()).flatten()
}

/// A JSON string's raw bytes with its escapes undone, into `out` (cut short if it fills);
/// the bytes written.
pub fn unescape(raw: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8], n: &mut usize| {
        for &b in bytes {
            if let Some(slot) = out.get_mut(*n) {
                *slot = b;
                *n += 1;
            }
        }
    };
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            put(&raw[i..=i], &mut n);
            i += 1;
            continue;
        }
        let Some(&kind) = raw.get(i + 1) else { break };
        i += 2;
        let simple = match kind {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'u' => None,
            other => Some(other),
        };
        if let Some(b) = simple {
            put(&[b], &mut n);
            continue;
        }
        let Some(mut c) = raw.get(i..i + 4).and_then(hex4) else { break };
        i += 4;
        // A surrogate pair: the second half follows as another \u escape.
        if (0xd800..0xdc00).contains(&c) {
            if let Some(low) = raw.get(i..i + 6).filter(|e| e.starts_with(b"\\u")).and_then(|e| hex4(&e[2..])) {
                c = 0x10000 + ((c - 0xd800) << 10) + (low.wrapping_sub(0xdc00) & 0x3ff);
                i += 6;
            }
        }
        let mut utf8 = [0u8; 4];
        let ch = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
        put(ch.encode_utf8(&mut utf8).as_bytes(), &mut n);
    }
    n
}

fn hex4(h: &[u8]) -> Option<u32> {
    h.iter().try_fold(0u32, |acc, &b| Some(acc * 16 + (b as char).to_digit(16)?))
}
