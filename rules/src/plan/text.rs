//! Building the plan's strings without `format!`: the planner runs on every
//! container create, and the formatting machinery (padding, growth by
//! reallocation) was most of the cost of each GPU's DRM link names.

/// Appends `v` in lower-case hexadecimal, zero-padded to `width` digits
/// (`{:0width$x}`).
pub(super) fn push_hex(s: &mut String, v: u32, width: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (32 - v.leading_zeros()).div_ceil(4).max(1) as usize;
    for _ in digits..width {
        s.push('0');
    }
    s.extend(
        (0..digits)
            .rev()
            .map(|i| char::from(HEX[((v >> (4 * i)) & 0xf) as usize])),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_format() {
        for v in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            256,
            4095,
            65535,
            65536,
            1 << 31,
            u32::MAX,
        ] {
            for width in [0, 1, 2, 4, 8] {
                let mut s = String::new();
                push_hex(&mut s, v, width);
                assert_eq!(s, format!("{v:0width$x}"), "{v} {width}");
            }
        }
    }
}
