//! The services' limits vhs plans by, and DynamoDB's item size rule.

use crate::model::Item;

/// DynamoDB's item size limit in bytes (400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// S3's object key length limit in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// S3's limit for a single PutObject (5 GiB).
pub const MAX_PUT_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// S3's limit for an object (5 TiB), reached by multipart upload.
pub const MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// S3's limit on the parts of a multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's smallest part (5 MiB), for every part but the last.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// Keys per BatchGetItem call.
pub const MAX_BATCH_GET: usize = 100;
/// Keys per DeleteObjects call.
pub const MAX_DELETE_BATCH: usize = 1000;
/// Most bytes of items one Query or Scan page reads (DynamoDB's 1 MB).
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// Most actions in one TransactWriteItems call.
pub const MAX_TRANSACT_ITEMS: usize = 100;

/// DynamoDB's size of an item in bytes: attribute names plus values, by the rules
/// AWS documents (strings and binaries by length, numbers by significant digits,
/// 3 bytes of overhead per list or map plus 1 per element).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => s.len(),
        A::N(n) => number_size(n),
        A::B(b) => b.as_ref().len(),
        A::Bool(_) | A::Null(_) => 1,
        A::Ss(v) => v.iter().map(String::len).sum(),
        A::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        A::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        A::L(v) => 3 + v.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        A::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

fn number_size(n: &str) -> usize {
    let digits = n
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue as A;

    #[test]
    fn item_size_follows_aws_rules() {
        let mut item = Item::new();
        item.insert("pk".into(), A::S("abc".into()));
        assert_eq!(item_size(&item), 5);
        item.insert("n".into(), A::N("12345".into()));
        assert_eq!(item_size(&item), 5 + 1 + 4);
        item.insert("l".into(), A::L(vec![A::Bool(true), A::Null(true)]));
        assert_eq!(item_size(&item), 10 + 1 + 3 + 2 + 2);
    }
}
