use vhs::Model;

#[derive(Model, serde::Serialize, serde::Deserialize)]
struct Event {
    #[vhs(hash_key, updated_at)]
    pk: String,
    #[vhs(updated_at)]
    at: Option<chrono::DateTime<chrono::Utc>>,
    #[vhs(updated_at)]
    again: chrono::DateTime<chrono::Utc>,
}

#[derive(Model, serde::Serialize, serde::Deserialize)]
struct Wrong {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(updated_at)]
    at: u64,
}

fn main() {}
