use vhs::Model;

#[derive(Model)]
enum Document {
    Text(String),
    Blob(Vec<u8>),
}

fn main() {}
