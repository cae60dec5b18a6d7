//! Calendar arithmetic and a small `strftime` for log timestamps.
//!
//! Input: microseconds since the epoch. Output: text appended to a byte buffer. Times are
//! always UTC (the offset printed is `+0000`): a module has no safe way to ask the C library
//! for the local zone, and UTC logs sort and merge without surprises.

/// A broken-down UTC time: the SDK's, shared with the other modules.
pub use featherd_mod_api::util::Civil as Tm;

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MONTHS_LONG: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const DAYS_LONG: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

fn push_num(out: &mut Vec<u8>, v: i64, width: usize, pad: u8) {
    let s = v.to_string();
    for _ in s.len()..width {
        out.push(pad);
    }
    out.extend_from_slice(s.as_bytes());
}

/// The Common Log Format timestamp: `[10/Oct/2000:13:55:36 +0000]`.
pub fn clf(out: &mut Vec<u8>, secs: i64) {
    strftime(out, "[%d/%b/%Y:%H:%M:%S %z]", secs);
}

/// Append `secs` formatted with the common `strftime` conversions. Unknown conversions are
/// copied as they are, so a typo shows in the log instead of silently vanishing.
pub fn strftime(out: &mut Vec<u8>, fmt: &str, secs: i64) {
    let tm = Tm::from_unix(secs);
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(d) = it.next() else {
            out.push(b'%');
            break;
        };
        match d {
            'a' => out.extend_from_slice(DAYS[tm.wday as usize].as_bytes()),
            'A' => out.extend_from_slice(DAYS_LONG[tm.wday as usize].as_bytes()),
            'b' | 'h' => out.extend_from_slice(MONTHS[tm.month as usize - 1].as_bytes()),
            'B' => out.extend_from_slice(MONTHS_LONG[tm.month as usize - 1].as_bytes()),
            'C' => push_num(out, tm.year.div_euclid(100), 2, b'0'),
            'd' => push_num(out, tm.day.into(), 2, b'0'),
            'e' => push_num(out, tm.day.into(), 2, b' '),
            'D' => strftime(out, "%m/%d/%y", secs),
            'F' => strftime(out, "%Y-%m-%d", secs),
            'H' => push_num(out, tm.hour.into(), 2, b'0'),
            'I' => push_num(out, ((tm.hour + 11) % 12 + 1).into(), 2, b'0'),
            'j' => push_num(out, (tm.yday + 1).into(), 3, b'0'),
            'm' => push_num(out, tm.month.into(), 2, b'0'),
            'M' => push_num(out, tm.min.into(), 2, b'0'),
            'n' => out.push(b'\n'),
            'p' => out.extend_from_slice(if tm.hour < 12 { b"AM" } else { b"PM" }),
            'R' => strftime(out, "%H:%M", secs),
            's' => push_num(out, secs, 1, b'0'),
            'S' => push_num(out, tm.sec.into(), 2, b'0'),
            't' => out.push(b'\t'),
            'T' => strftime(out, "%H:%M:%S", secs),
            'u' => push_num(out, if tm.wday == 0 { 7 } else { tm.wday.into() }, 1, b'0'),
            'w' => push_num(out, tm.wday.into(), 1, b'0'),
            'y' => push_num(out, tm.year.rem_euclid(100), 2, b'0'),
            'Y' => push_num(out, tm.year, 4, b'0'),
            'z' => out.extend_from_slice(b"+0000"),
            'Z' => out.extend_from_slice(b"UTC"),
            '%' => out.push(b'%'),
            other => {
                out.push(b'%');
                let mut buf = [0u8; 4];
                out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakdown_table() {
        type Fields = (i64, u32, u32, u32, u32, u32, u32, u32);
        let cases: &[(i64, Fields)] = &[
            // secs → (year, month, day, hour, min, sec, wday, yday)
            (0, (1970, 1, 1, 0, 0, 0, 4, 0)),
            (971_186_136, (2000, 10, 10, 13, 55, 36, 2, 283)),
            (951_782_400, (2000, 2, 29, 0, 0, 0, 2, 59)),
            (1_709_251_199, (2024, 2, 29, 23, 59, 59, 4, 59)),
            (1_735_689_599, (2024, 12, 31, 23, 59, 59, 2, 365)),
            (-1, (1969, 12, 31, 23, 59, 59, 3, 364)),
            (4_102_444_800, (2100, 1, 1, 0, 0, 0, 5, 0)),
        ];
        for &(secs, (y, mo, d, h, mi, s, wd, yd)) in cases {
            let tm = Tm::from_unix(secs);
            assert_eq!(
                (tm.year, tm.month, tm.day, tm.hour, tm.min, tm.sec, tm.wday, tm.yday),
                (y, mo, d, h, mi, s, wd, yd),
                "{secs}"
            );
        }
    }

    #[test]
    fn strftime_table() {
        let t = 971_186_136; // Tue, 10 Oct 2000 13:55:36 UTC
        let cases: &[(&str, &str)] = &[
            ("%Y-%m-%dT%H:%M:%S%z", "2000-10-10T13:55:36+0000"),
            ("%a %A %b %B %h", "Tue Tuesday Oct October Oct"),
            ("%d|%e|%j|%y|%C", "10|10|284|00|20"),
            ("%I%p", "01PM"),
            ("%F %T %R %D", "2000-10-10 13:55:36 13:55 10/10/00"),
            ("%s", "971186136"),
            ("%u %w %Z", "2 2 UTC"),
            ("100%% %q %", "100% %q %"),
            ("plain é", "plain é"),
        ];
        for (fmt, want) in cases {
            let mut out = Vec::new();
            strftime(&mut out, fmt, t);
            assert_eq!(String::from_utf8_lossy(&out), *want, "{fmt}");
        }
        let mut out = Vec::new();
        clf(&mut out, t);
        assert_eq!(out, b"[10/Oct/2000:13:55:36 +0000]");
    }
}
