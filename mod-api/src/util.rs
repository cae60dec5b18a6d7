//! Small helpers that several modules (and the core) need alike: a UTC calendar breakdown
//! and address-in-network tests. Plain functions, no ABI involved.

use std::net::IpAddr;

/// A UTC time broken down into calendar fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    /// 0 = Sunday
    pub wday: u32,
    /// Day of the year, 0..=365
    pub yday: u32,
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

impl Civil {
    /// Break down seconds since the epoch (proleptic Gregorian calendar, UTC).
    pub fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        // Civil-from-days over 400-year eras, counting from March so that the leap day falls
        // at the end of the year (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        const CUMULATIVE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let yday = CUMULATIVE[month as usize - 1] + day - 1 + u32::from(month > 2 && is_leap(year));
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            min: rem / 60 % 60,
            sec: rem % 60,
            wday: (days + 4).rem_euclid(7) as u32, // 1970-01-01 was a Thursday
            yday,
        }
    }
}

/// Whether `ip` lies in `net/prefix` (both of one family; a mixed pair never matches).
pub fn in_network(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let c = |y, mo, d, h, mi, s, w, yday| Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            min: mi,
            sec: s,
            wday: w,
            yday,
        };
        assert_eq!(Civil::from_unix(0), c(1970, 1, 1, 0, 0, 0, 4, 0));
        assert_eq!(Civil::from_unix(951_782_400), c(2000, 2, 29, 0, 0, 0, 2, 59));
        assert_eq!(Civil::from_unix(1_796_300_001), c(2026, 12, 3, 12, 13, 21, 4, 336));
        assert_eq!(Civil::from_unix(-1), c(1969, 12, 31, 23, 59, 59, 3, 364));
    }

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_network(ip("10.0.0.0"), 8, ip("10.200.1.2")));
        assert!(!in_network(ip("10.0.0.0"), 8, ip("11.0.0.1")));
        assert!(in_network(ip("0.0.0.0"), 0, ip("192.0.2.1")));
        assert!(in_network(ip("192.0.2.1"), 32, ip("192.0.2.1")));
        assert!(in_network(ip("2001:db8::"), 32, ip("2001:db8:1::1")));
        assert!(!in_network(ip("2001:db8::"), 32, ip("2001:db9::1")));
        assert!(!in_network(ip("10.0.0.0"), 8, ip("::ffff:10.0.0.1")));
    }
}
