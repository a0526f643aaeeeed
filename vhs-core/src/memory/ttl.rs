//! Time to live in memory: the attribute a table's time to live reads, and a
//! reaper that tests call to remove expired items as DynamoDB's does.

use super::*;

/// UpdateTimeToLive enabling it on `attr`, with DynamoDB's refusals: enabled
/// already (on this attribute or another) is a `ValidationException`.
pub(super) fn enable(state: &mut State, table: &str, attr: &str) -> Result<()> {
    const OP: &str = Op::UpdateTimeToLive.name();
    if attr.is_empty() {
        return Err(validation(
            OP,
            "TimeToLiveSpecification.AttributeName is empty",
        ));
    }
    let t = state.table(table, OP)?;
    match &t.spec.time_to_live {
        Some(found) if found == attr => Err(validation(OP, "TimeToLive is already enabled")),
        Some(found) => Err(validation(
            OP,
            format!("TimeToLive is active on a different AttributeName: {found}"),
        )),
        None => {
            t.spec.time_to_live = Some(attr.to_owned());
            Ok(())
        }
    }
}

impl MemoryBackend {
    /// Removes every item whose table has time to live enabled and whose TTL
    /// attribute is a Number of epoch seconds at or before `now_secs`, as
    /// DynamoDB's reaper does (it checks the attribute again at removal: an
    /// item extended meanwhile stays). Each removal is recorded in the
    /// table's stream, if it has one, as a removal by time to live. Returns
    /// how many items it removed.
    ///
    /// DynamoDB runs its reaper on its own schedule, up to days after an item
    /// expired; in memory nothing expires until a test calls this.
    pub fn reap_expired(&self, now_secs: u64) -> usize {
        let mut state = self.lock();
        let mut removed = 0;
        for table in state.tables.values_mut() {
            let Some(attr) = table.spec.time_to_live.clone() else {
                continue;
            };
            let expired: Vec<TableKey> = table
                .items
                .iter()
                .filter(|(_, item)| crate::ttl::expired_at(item, &attr, now_secs))
                .map(|(key, _)| key.clone())
                .collect();
            for key in expired {
                // Recorded in the stream as a removal by time to live (the
                // service's identity), as DynamoDB records its reaper's.
                table.write(key, None, true);
                removed += 1;
            }
        }
        removed
    }
}
