//! What is left to insert of one spool batch, in pieces: how a batch is
//! halved when an insert of it times out, and split by tenant when it is
//! refused, so that one tenant's bad rows are never set aside with another
//! tenant's good ones.

use std::collections::VecDeque;

use bytes::Bytes;

use super::spool::Batch;
use super::TABLES;

/// A run of rows (JSON lines) of one table, inserted in one go.
#[derive(Debug, Clone)]
pub struct Piece {
    pub rows: Bytes,
    /// Times ClickHouse refused this piece.
    pub refusals: u32,
    /// Its rows are one tenant's (or the piece was split as far as that).
    pub per_tenant: bool,
}

/// A batch on its way to ClickHouse.
pub struct Shipment {
    pub tables: Vec<(&'static str, VecDeque<Piece>)>,
    /// Events set aside so far.
    pub set_aside: u64,
}

impl Shipment {
    pub fn of(batch: &Batch) -> Self {
        let tables = batch
            .rows_by_table
            .iter()
            .filter_map(|(table, rows)| {
                let Some(known) = TABLES.iter().find(|known| *known == table) else {
                    tracing::error!(table, "spooled events for an unknown table are skipped");
                    return None;
                };
                let piece = Piece {
                    rows: Bytes::copy_from_slice(rows),
                    refusals: 0,
                    per_tenant: false,
                };
                Some((*known, VecDeque::from([piece])))
            })
            .collect();
        Self {
            tables,
            set_aside: 0,
        }
    }
}

/// How many rows `rows` holds.
pub fn lines(rows: &[u8]) -> usize {
    rows.iter().filter(|b| **b == b'\n').count()
}

/// `rows` in two runs of about half the rows each (the first never empty).
pub fn halves(rows: &Bytes) -> (Bytes, Bytes) {
    let middle = lines(rows) / 2;
    let cut = rows
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(middle.max(1) - 1)
        .map_or(rows.len(), |(at, _)| at + 1);
    (rows.slice(..cut), rows.slice(cut..))
}

/// `rows` grouped by their `tenant_id`, each group in the order its rows
/// came, groups in the order of their first row. A row that cannot be read
/// is a group of its own kind (tenant unknown).
pub fn by_tenant(rows: &[u8]) -> Vec<Bytes> {
    #[derive(serde::Deserialize)]
    struct Tenant<'a> {
        #[serde(borrow)]
        tenant_id: std::borrow::Cow<'a, str>,
    }
    let mut groups: Vec<(Option<String>, Vec<u8>)> = Vec::new();
    for line in rows.split_inclusive(|b| *b == b'\n') {
        let tenant = serde_json::from_slice::<Tenant>(line)
            .ok()
            .map(|row| row.tenant_id.into_owned());
        match groups.iter_mut().find(|(t, _)| *t == tenant) {
            Some((_, group)) => group.extend_from_slice(line),
            None => groups.push((tenant, line.to_vec())),
        }
    }
    groups
        .into_iter()
        .map(|(_, rows)| Bytes::from(rows))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tenant: &str, n: u32) -> String {
        format!("{{\"tenant_id\":\"{tenant}\",\"n\":{n}}}\n")
    }

    #[test]
    fn halves_cut_on_row_boundaries() {
        let rows = Bytes::from((0..5).map(|n| row("a", n)).collect::<String>());
        let (first, second) = halves(&rows);
        assert_eq!(lines(&first), 2);
        assert_eq!(lines(&second), 3);
        assert_eq!([first, second].concat(), rows.to_vec());
        let two = Bytes::from(row("a", 0) + &row("a", 1));
        let (first, second) = halves(&two);
        assert_eq!((lines(&first), lines(&second)), (1, 1));
    }

    #[test]
    fn rows_are_grouped_by_tenant_in_order() {
        let rows = [
            row("a", 1),
            row("b", 2),
            row("a", 3),
            "not json\n".into(),
            row("b", 4),
        ]
        .concat();
        let groups = by_tenant(rows.as_bytes());
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0], (row("a", 1) + &row("a", 3)).as_bytes());
        assert_eq!(groups[1], (row("b", 2) + &row("b", 4)).as_bytes());
        assert_eq!(groups[2], "not json\n".as_bytes());
    }
}
