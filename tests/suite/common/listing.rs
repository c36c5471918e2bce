//! Listings compared with ansible-playbook's: what stays of `--list-*` output once whitespace
//! and the order of what Ansible prints from Python sets are normalised away.

/// What stays of a listing once whitespace is normalised: non-empty lines, trimmed, runs of
/// blanks made one space. Ansible prints a play's hosts and its play-level tags from Python sets,
/// in an order that changes from run to run (the string hash seed), so those are sorted.
pub fn normalise(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .map(|l| sort_play_tags(&l))
        .collect();
    let mut i = 0;
    while i < lines.len() {
        let count = lines[i]
            .strip_prefix("hosts (")
            .and_then(|r| r.strip_suffix("):"))
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(n) = count {
            let end = (i + 1 + n).min(lines.len());
            lines[i + 1..end].sort();
            i = end;
        } else {
            i += 1;
        }
    }
    lines
}

fn sort_play_tags(line: &str) -> String {
    if !line.starts_with("play #") {
        return line.to_string();
    }
    let Some((head, tags)) = line.rsplit_once(" TAGS: [") else {
        return line.to_string();
    };
    let Some(tags) = tags.strip_suffix(']') else {
        return line.to_string();
    };
    // Split on the comma only: Ansible joins a play's tags with `,`, and `a, b` stays different.
    let mut tags: Vec<&str> = tags.split(',').filter(|t| !t.is_empty()).collect();
    tags.sort();
    format!("{head} TAGS: [{}]", tags.join(","))
}
