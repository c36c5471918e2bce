//! Batches as Ansible's `serial` writes them: a count (`2`), a percentage (`"25%"`) or a list of
//! them (`[1, "25%", "100%"]`, the last entry repeating). One parser and one splitter for the
//! plays' `serial` and the switch's `serial`/`batch_size`.

/// One entry of a `serial:` list.
#[derive(Debug, Clone, PartialEq)]
pub enum SerialStep {
    Count(usize),
    Percent(f64),
}

impl SerialStep {
    /// A count of at least 1 or a percentage above 0 and at most 100, written as text
    /// (`"3"`, `"25%"`); `None` for anything else.
    pub fn parse(s: &str) -> Option<SerialStep> {
        let s = s.trim();
        match s.strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| *p > 0.0 && *p <= 100.0)
                .map(SerialStep::Percent),
            None => s.parse::<usize>().ok().filter(|n| *n >= 1).map(SerialStep::Count),
        }
    }
}

/// What a `serial` value may be, for error messages.
pub const SERIAL_HELP: &str = "a host count (`2`), a percentage (`\"25%\"`) or a list of them (`[1, \"50%\"]`)";

/// Sizes of the `serial` batches for `n` hosts: percentages round down (at least 1), the last
/// entry repeats, and an empty `serial` is one batch of all hosts.
pub fn serial_sizes(serial: &[SerialStep], n: usize) -> Vec<usize> {
    if serial.is_empty() || n == 0 {
        return if n == 0 { Vec::new() } else { vec![n] };
    }
    let mut out = Vec::new();
    let mut left = n;
    let mut i = 0;
    while left > 0 {
        let step = &serial[i.min(serial.len() - 1)];
        let size = match step {
            SerialStep::Count(c) => *c,
            SerialStep::Percent(p) => ((n as f64) * p / 100.0).floor() as usize,
        }
        .max(1)
        .min(left);
        out.push(size);
        left -= size;
        i += 1;
    }
    out
}

/// `items` cut into consecutive batches of the given sizes.
pub fn split<T: Clone>(items: &[T], sizes: &[usize]) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut i = 0;
    for &s in sizes.iter().filter(|s| **s > 0) {
        let end = (i + s).min(items.len());
        out.push(items[i..end].to_vec());
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_batches_like_ansible() {
        assert_eq!(serial_sizes(&[], 5), [5]);
        assert_eq!(serial_sizes(&[SerialStep::Count(2)], 5), [2, 2, 1]);
        assert_eq!(serial_sizes(&[SerialStep::Percent(30.0)], 10), [3, 3, 3, 1]);
        assert_eq!(
            serial_sizes(&[SerialStep::Count(1), SerialStep::Percent(50.0)], 10),
            [1, 5, 4]
        );
        assert_eq!(serial_sizes(&[SerialStep::Percent(10.0)], 3), [1, 1, 1]);
    }

    #[test]
    fn steps_parse_and_out_of_range_ones_are_refused() {
        assert_eq!(SerialStep::parse(" 3 "), Some(SerialStep::Count(3)));
        assert_eq!(SerialStep::parse("25%"), Some(SerialStep::Percent(25.0)));
        for bad in ["0", "-1", "0%", "-50%", "101%", "NaN%", "x", ""] {
            assert_eq!(SerialStep::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn split_follows_the_sizes() {
        assert_eq!(split(&[1, 2, 3, 4, 5], &[2, 2, 1]), [vec![1, 2], vec![3, 4], vec![5]]);
    }
}
