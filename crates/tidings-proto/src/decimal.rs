//! Decimal numbers written without allocating, for the encoders of every protocol.

use bytes::BufMut;

/// Writes `n` in decimal.
pub(crate) fn put_u64<B: BufMut>(out: &mut B, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_to_string() {
        for n in [0, 9, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            super::put_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
