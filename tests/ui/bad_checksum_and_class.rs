use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[large(checksum = "sha1")]
    a: Option<String>,
    #[large(checksum = "sha256", checksum = "md5")]
    b: Option<Vec<u8>>,
    #[large(storage_class = "GLACIER")]
    c: Option<Vec<u8>>,
    #[large(storage_class = "standard")]
    d: Option<Vec<u8>>,
    #[large(checksum = sha256)]
    e: Option<Vec<u8>>,
}

fn main() {}
