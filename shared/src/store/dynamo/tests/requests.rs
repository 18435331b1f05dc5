//! Page cursors.

use std::collections::HashMap;

use crate::store::dynamo::codec::s;
use crate::store::dynamo::requests::{decode_cursor, encode_cursor};

#[test]
fn cursors_round_trip_and_garbage_is_rejected() {
    let k = HashMap::from([
        ("PK".to_owned(), s("T#a#U#b")),
        ("SUBS_PK".to_owned(), s("SUBS")),
    ]);
    assert_eq!(decode_cursor(&encode_cursor(&k).unwrap()).unwrap(), k);
    assert!(decode_cursor("not a cursor!").is_err());
}
