//! Left-aligned text tables, as `docker ps` and `docker stats` print them.

/// Each row's cells padded to their column's widest, joined by `gap`, trailing blanks trimmed.
pub fn aligned<R: AsRef<[String]>>(rows: &[R], gap: &str) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().filter_map(|r| r.as_ref().get(i)).map(String::len).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.as_ref().iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join(gap).trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_and_trailing_blanks_go() {
        let rows = vec![vec!["NAME".to_string(), "X".into()], vec!["a".into(), "".into()]];
        assert_eq!(super::aligned(&rows, "  "), "NAME  X\na\n");
    }
}
