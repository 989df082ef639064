//! Reads a JSON array of strings (the body of a SockJS `a` frame) without allocating: each
//! string is handed over as bytes, borrowed from the input when it holds no escape, else
//! unescaped into one buffer the caller reuses. The load generator reads every message this
//! way, so it must cost less than the servers it measures; it stays as strict as a JSON
//! parser all the same: anything but an array of strings (whitespace allowed between tokens)
//! is an error, and so are bad escapes, lone surrogates, raw control characters and invalid
//! UTF-8.

/// What was wrong with the array (the frame quotes itself around it).
pub(crate) type Malformed = &'static str;

/// Calls `each` with every string of the array `json`, unescaped, in order. The strings that
/// had escapes are unescaped into `scratch` (which grows to the length of `json`).
pub(crate) fn for_each(
    json: &[u8],
    scratch: &mut Vec<u8>,
    mut each: impl FnMut(&[u8]),
) -> Result<(), Malformed> {
    // Once for the whole array: the strings are then cut at ASCII bytes only, so each is
    // valid UTF-8 too.
    std::str::from_utf8(json).map_err(|_| "not UTF-8")?;
    let mut at = skip_space(json, 0);
    if json.get(at) != Some(&b'[') {
        return Err("not an array");
    }
    at = skip_space(json, at + 1);
    if json.get(at) == Some(&b']') {
        at += 1;
    } else {
        loop {
            if json.get(at) != Some(&b'"') {
                return Err("not a string in the array");
            }
            at = skip_space(json, string(json, at + 1, scratch, &mut each)?);
            match json.get(at) {
                Some(b',') => at = skip_space(json, at + 1),
                Some(b']') => {
                    at += 1;
                    break;
                }
                _ => return Err("the array does not go on with `,` or end with `]`"),
            }
        }
    }
    if skip_space(json, at) != json.len() {
        return Err("bytes after the array");
    }
    Ok(())
}

fn skip_space(json: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = json.get(at) {
        at += 1;
    }
    at
}

/// Whether `b` cannot stand in a string as it is: `"`, `\` or a control character.
fn is_special(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The 8 bytes at `at` as one word (first byte lowest), when there are 8.
fn word_at(json: &[u8], at: usize) -> Option<u64> {
    let bytes = json.get(at..at + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// How many of the 8 bytes of `word` come before the first special one (8: none is): the
/// usual "has a zero byte" test, `(v - 0x01..) & !v & 0x80..`, for `v` = the word xor `"`,
/// xor `\`, and (below 0x20) the word itself against 0x20. Bytes above the first flagged one
/// may be flagged wrongly; the first one never is.
fn plain_prefix(word: u64) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero(word ^ (ONES * u64::from(b'"')));
    let backslash = zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    ((quote | backslash | control).trailing_zeros() / 8) as usize
}

/// Where the next special byte is, from `at` on: eight bytes at a time while there are eight.
fn next_special(json: &[u8], mut at: usize) -> Option<usize> {
    while let Some(word) = word_at(json, at) {
        let plain = plain_prefix(word);
        if plain < 8 {
            return Some(at + plain);
        }
        at += 8;
    }
    json[at..]
        .iter()
        .position(|&b| is_special(b))
        .map(|n| at + n)
}

/// Reads the string whose content starts at `start` (after its opening quote), hands it to
/// `each` and returns where it ended (after its closing quote).
fn string(
    json: &[u8],
    start: usize,
    scratch: &mut Vec<u8>,
    each: &mut impl FnMut(&[u8]),
) -> Result<usize, Malformed> {
    let mut at = next_special(json, start).ok_or("an unterminated string")?;
    if json[at] == b'"' {
        each(&json[start..at]);
        return Ok(at + 1);
    }
    // Unescaped, a string is never longer than the rest of the input: with room for that,
    // bytes go in by index, eight at a time (those after a special byte are overwritten
    // next). The buffer grows to the longest frame read and stays (frames are bounded).
    if scratch.len() < json.len() - start {
        scratch.resize(json.len() - start, 0);
    }
    let mut len = at - start;
    scratch[..len].copy_from_slice(&json[start..at]);
    loop {
        // Copy up to the next special byte.
        loop {
            let plain = match word_at(json, at) {
                Some(word) => {
                    scratch[len..len + 8].copy_from_slice(&word.to_le_bytes());
                    plain_prefix(word)
                }
                None => match json.get(at) {
                    Some(&b) if !is_special(b) => {
                        scratch[len] = b;
                        1
                    }
                    _ => 0,
                },
            };
            at += plain;
            len += plain;
            if plain < 8 && json.get(at).is_none_or(|&b| is_special(b)) {
                break;
            }
        }
        match *json.get(at).ok_or("an unterminated string")? {
            b'"' => {
                each(&scratch[..len]);
                return Ok(at + 1);
            }
            // The escape a JSON object in a string has most, read without a call.
            b'\\' if json.get(at + 1) == Some(&b'"') => {
                scratch[len] = b'"';
                len += 1;
                at += 2;
            }
            b'\\' => (at, len) = escape(json, at + 1, scratch, len)?,
            _ => return Err("a control character in a string"),
        }
    }
}

/// Decodes the escape whose letter is at `at` (after the `\`) into `out` at `len`; returns
/// where the string goes on and the new length.
#[inline]
fn escape(json: &[u8], at: usize, out: &mut [u8], len: usize) -> Result<(usize, usize), Malformed> {
    let simple = match json.get(at) {
        Some(b'"') => b'"',
        Some(b'\\') => b'\\',
        Some(b'/') => b'/',
        Some(b'b') => 0x08,
        Some(b'f') => 0x0c,
        Some(b'n') => b'\n',
        Some(b'r') => b'\r',
        Some(b't') => b'\t',
        Some(b'u') => return unicode_escape(json, at + 1, out, len),
        _ => return Err("a bad escape"),
    };
    out[len] = simple;
    Ok((at + 1, len + 1))
}

/// Decodes `XXXX` at `at` (after `\u`), and the low half after it when it is a high
/// surrogate, into `out` at `len` (at most 4 bytes for the 6 or 12 read).
fn unicode_escape(
    json: &[u8],
    at: usize,
    out: &mut [u8],
    len: usize,
) -> Result<(usize, usize), Malformed> {
    let high = hex4(json, at)?;
    let (code, end) = match high {
        0xD800..=0xDBFF => {
            if json.get(at + 4..at + 6) != Some(b"\\u") {
                return Err("a lone surrogate");
            }
            let low = hex4(json, at + 6)?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return Err("a lone surrogate");
            }
            (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00), at + 10)
        }
        0xDC00..=0xDFFF => return Err("a lone surrogate"),
        _ => (high, at + 4),
    };
    let c = char::from_u32(code).ok_or("a bad \\u escape")?;
    Ok((end, len + c.encode_utf8(&mut out[len..]).len()))
}

fn hex4(json: &[u8], at: usize) -> Result<u32, Malformed> {
    let digits = json.get(at..at + 4).ok_or("a short \\u escape")?;
    digits.iter().try_fold(0, |n, &d| {
        let v = (d as char).to_digit(16).ok_or("a bad \\u escape")?;
        Ok(n * 16 + v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(json: &str) -> Result<Vec<String>, Malformed> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        for_each(json.as_bytes(), &mut scratch, |s| {
            out.push(String::from_utf8(s.to_vec()).expect("UTF-8"))
        })?;
        Ok(out)
    }

    #[test]
    fn reads_what_serde_json_reads() {
        let cases = [
            r#"[]"#,
            r#" [ ] "#,
            r#"["a"]"#,
            r#"[ "a" , "b" ,"" ]"#,
            r#"["{\"type\":\"message\",\"offset\":3}"]"#,
            r#"["\\ \/ \b \f \n \r \t"]"#,
            r#"["x\u2028y\u00e9\u0000z"]"#,
            r#"["\ud83d\ude00 and \uD83D\uDE00"]"#,
            "[\"unicode é ß 漢字 😀\"]",
        ];
        for json in cases {
            let expected: Vec<String> = serde_json::from_str(json).unwrap();
            assert_eq!(strings(json), Ok(expected), "{json}");
        }
    }

    #[test]
    fn rejects_what_serde_json_rejects() {
        let cases: [&[u8]; 17] = [
            b"",
            b"[",
            b"[\"a\"",
            b"[\"a\",]",
            b"[,\"a\"]",
            b"[1]",
            b"[\"a\" \"b\"]",
            b"[\"a\"]x",
            b"[\"a\"][]",
            b"[\"\\x\"]",
            b"[\"\\u12\"]",
            b"[\"\\u12g4\"]",
            b"[\"\\ud83d\"]",
            b"[\"\\ude00\"]",
            b"[\"\\ud83d\\u0041\"]",
            b"[\"tab\there\"]",
            b"[\"\xff\"]",
        ];
        for json in cases {
            assert!(
                serde_json::from_slice::<Vec<String>>(json).is_err(),
                "serde_json accepts {json:?}"
            );
            let mut scratch = Vec::new();
            assert!(
                for_each(json, &mut scratch, |_| {}).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn every_special_byte_is_found_wherever_it_is_in_a_word() {
        for special in [b'"', b'\\', 0, 0x1f] {
            for at in 0..8 {
                let mut bytes = [b'a'; 8];
                bytes[at] = special;
                assert_eq!(
                    plain_prefix(u64::from_le_bytes(bytes)),
                    at,
                    "{special} at {at}"
                );
                // A special byte right after another one, or bytes near the ones tested.
                bytes[(at + 1) % 8] = 0x80;
                bytes[(at + 2) % 8] = 0x21;
                bytes[(at + 3) % 8] = 0xff;
                assert_eq!(
                    plain_prefix(u64::from_le_bytes(bytes)),
                    at,
                    "{special} at {at}"
                );
            }
        }
        assert_eq!(plain_prefix(u64::from_le_bytes(*b"abc \x7f\xc3\xa9!")), 8);
    }

    #[test]
    fn long_and_short_runs_between_escapes_read_the_same_as_serde_json() {
        // Runs of every length up to past two words between escapes, and strings ending at
        // every position near the end of the input.
        for run in 0..20 {
            let plain = "x".repeat(run);
            let text = format!(r#"["{plain}\"{plain}\n{plain}é\u00e9{plain}","{plain}"]"#);
            let expected: Vec<String> = serde_json::from_str(&text).unwrap();
            assert_eq!(strings(&text), Ok(expected), "{text}");
            let unterminated = format!(r#"["{plain}\"{plain}"#);
            assert!(strings(&unterminated).is_err(), "{unterminated}");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed_the_others_share_one_buffer() {
        let json = br#"["plain","esc\"aped","again\n"]"#;
        let mut scratch = Vec::with_capacity(64);
        let buffer = scratch.as_ptr();
        let mut seen = Vec::new();
        for_each(json, &mut scratch, |s| {
            seen.push((s.to_vec(), json.as_ptr_range().contains(&s.as_ptr())))
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (b"plain".to_vec(), true),
                (b"esc\"aped".to_vec(), false),
                (b"again\n".to_vec(), false)
            ]
        );
        assert_eq!(scratch.as_ptr(), buffer, "the buffer was reallocated");
    }
}
