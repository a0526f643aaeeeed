pub use vhs_core::*; pub use vhs_derive::Model;
