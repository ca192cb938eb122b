//! CSV and Parquet hold the same log: written by our writers and read back, both give the raw log
//! that was written, equal encodings and equal batches; streamed chunks add up to the whole.

mod common;

use std::sync::Arc;

use common::*;
use dmtl_data::*;

#[test]
fn csv_and_parquet_read_back_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let original = log(3000, 11);
    let csv = dir.path().join("log.csv");
    let pq = dir.path().join("log.parquet");
    write_csv(&original, &s, &csv).unwrap();
    write_parquet(&original, &s, &pq).unwrap();
    let from_csv = read_log(&csv, &s, &ReadOptions::default().with_chunk_rows(700)).unwrap();
    let from_pq = read_log(&pq, &s, &ReadOptions::default().with_chunk_rows(700)).unwrap();
    assert_eq!(
        renamed(from_csv.clone(), "x"),
        renamed(original.clone(), "x")
    );
    assert_eq!(renamed(from_pq.clone(), "x"), renamed(original, "x"));

    let vocabs = Vocabularies::build(&s, &from_csv).unwrap();
    assert_eq!(vocabs, Vocabularies::build(&s, &from_pq).unwrap());
    let a = Dataset::encode(&s, &from_csv, &vocabs).unwrap();
    let b = Dataset::encode(&s, &from_pq, &vocabs).unwrap();
    assert_eq!(a, b);
    let ba: Vec<Batch> = a.batches(256, Some((5, 2)), false).collect();
    let bb: Vec<Batch> = b.batches(256, Some((5, 2)), false).collect();
    assert_eq!(ba.len(), 12);
    assert_eq!(ba, bb);
}

#[test]
fn streamed_chunks_concatenate_to_the_whole_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let original = log(1000, 3);
    for name in ["log.csv", "log.pq"] {
        let p = dir.path().join(name);
        if name.ends_with("csv") {
            write_csv(&original, &s, &p).unwrap();
        } else {
            write_parquet(&original, &s, &p).unwrap();
        }
        let whole = read_log(&p, &s, &ReadOptions::default()).unwrap();
        let reader = LogReader::open(&p, &s, &ReadOptions::default().with_chunk_rows(128)).unwrap();
        let chunks: Vec<RawLog> = reader.map(|c| c.unwrap()).collect();
        assert_eq!(chunks.len(), 8, "{name}");
        assert!(chunks[..7].iter().all(|c| c.n_rows == 128), "{name}");
        assert_eq!(chunks[7].n_rows, 1000 - 7 * 128);
        let mut joined = chunks[0].clone();
        for c in &chunks[1..] {
            joined.append(c.clone()).unwrap();
        }
        assert_eq!(joined, whole, "{name}");
    }
}

#[test]
fn one_side_tables_read_only_their_columns_and_encode_with_fillers() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let full = log(400, 8);
    let vocabs = Vocabularies::build(&s, &full).unwrap();
    // An item catalogue: item columns only, no labels, no time.
    let mut items = full.clone();
    items
        .columns
        .retain(|(n, _)| ["item_id", "item_tags", "price"].contains(&n.as_str()));
    items.click = None;
    items.duration = None;
    items.time = None;
    let p = dir.path().join("items.csv");
    write_csv(&items, &s, &p).unwrap();
    let header = std::fs::read_to_string(&p).unwrap();
    assert!(header.starts_with("item_id,item_tags,price\n"), "{header}");
    // Reading it as a full log fails on the first missing column.
    let t = read_log(&p, &s, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        t.contains("column `user_id` named by the schema is missing"),
        "{t}"
    );
    let opts = ReadOptions::table_of(&[Side::Item]);
    let got = read_log(&p, &s, &opts).unwrap();
    assert_eq!(renamed(got.clone(), "x"), renamed(items, "x"));
    assert!(!got.has_labels());
    let d = Dataset::encode(&s, &got, &vocabs).unwrap();
    let full_d = Dataset::encode(&s, &full, &vocabs).unwrap();
    assert_eq!(
        d.fields[0],
        FieldData::Ids(vec![0; 400]),
        "user_id filled with OOV"
    );
    assert_eq!(
        d.fields[2],
        FieldData::Bag {
            ids: vec![],
            offsets: vec![0; 401]
        }
    );
    assert_eq!(
        d.fields[4], full_d.fields[4],
        "item_id encodes as in the full log"
    );
    assert_eq!(d.fields[6], full_d.fields[6]);
    assert!(d.click.is_empty() && d.long_read.is_empty() && d.user_group.is_empty());
    assert_eq!(d.item_ids, full_d.item_ids);
    let b = d.batch(&[3, 1]);
    assert_eq!(b.n_rows, 2);
    assert!(b.click.is_empty());

    // A full log read as a user table keeps the labels only when asked not to require them.
    let p = dir.path().join("full.csv");
    write_csv(&full, &s, &p).unwrap();
    let users = read_log(&p, &s, &ReadOptions::table_of(&[Side::User, Side::Context])).unwrap();
    let names: Vec<&str> = users.columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["user_id", "age", "user_tags", "hour"]);
    assert!(users.has_labels());
}

/// Parquet files from other tools: integer ids, list-of-integer bags, delimited-string bags,
/// float64 dense values, boolean clicks, dictionary-encoded strings.
#[test]
fn parquet_from_other_writers_is_accepted() {
    use arrow_array::builder::{Int64Builder, ListBuilder};
    use arrow_array::*;
    use arrow_schema::{DataType, Field, Schema as AS};
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let mut tags = ListBuilder::new(Int64Builder::new());
    tags.values().append_value(7);
    tags.values().append_value(8);
    tags.append(true);
    tags.append(false); // a null bag is an empty bag
    let tags = tags.finish();
    let hour: DictionaryArray<arrow_array::types::Int32Type> = vec!["5", "6"].into_iter().collect();
    let fields = vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("age", DataType::Int32, true),
        Field::new("user_tags", tags.data_type().clone(), true),
        Field::new("hour", hour.data_type().clone(), false),
        Field::new("item_id", DataType::UInt32, false),
        Field::new("item_tags", DataType::Utf8, true),
        Field::new("price", DataType::Float64, false),
        Field::new("click", DataType::Boolean, false),
        Field::new("duration", DataType::Int32, false),
        Field::new("day", DataType::Int32, false),
    ];
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![123, -4])),
        Arc::new(Int32Array::from(vec![Some(30), None])),
        Arc::new(tags),
        Arc::new(hour),
        Arc::new(UInt32Array::from(vec![9, 10])),
        Arc::new(StringArray::from(vec![Some("a;b;;c"), None])),
        Arc::new(Float64Array::from(vec![0.25, -2.0])),
        Arc::new(BooleanArray::from(vec![true, false])),
        Arc::new(Int32Array::from(vec![61, 0])),
        Arc::new(Int32Array::from(vec![1, 4])),
    ];
    let batch = RecordBatch::try_new(Arc::new(AS::new(fields)), arrays).unwrap();
    let p = dir.path().join("spark.parquet");
    let f = std::fs::File::create(&p).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let got = read_log(&p, &s, &ReadOptions::default()).unwrap();
    let cat = |v: &[&str]| RawColumn::Categorical(v.iter().map(|x| x.to_string()).collect());
    assert_eq!(got.column("user_id"), Some(&cat(&["123", "-4"])));
    assert_eq!(got.column("age"), Some(&cat(&["30", ""])));
    assert_eq!(got.column("hour"), Some(&cat(&["5", "6"])));
    assert_eq!(got.column("item_id"), Some(&cat(&["9", "10"])));
    assert_eq!(
        got.column("user_tags"),
        Some(&RawColumn::MultiHot {
            tokens: vec!["7", "8"].into(),
            offsets: vec![0, 2, 2]
        })
    );
    assert_eq!(
        got.column("item_tags"),
        Some(&RawColumn::MultiHot {
            tokens: vec!["a", "b", "c"].into(),
            offsets: vec![0, 3, 3]
        })
    );
    assert_eq!(
        got.column("price"),
        Some(&RawColumn::Dense(vec![0.25, -2.0]))
    );
    assert_eq!(got.click, Some(vec![1.0, 0.0]));
    assert_eq!(got.duration, Some(vec![61.0, 0.0]));
    assert_eq!(got.time, Some(vec![1, 4]));
}

#[test]
fn parquet_column_of_the_wrong_type_is_named() {
    use arrow_array::*;
    use arrow_schema::{DataType, Field, Schema as AS};
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let mut l = log(3, 1);
    l.columns.retain(|(n, _)| n != "user_id");
    let p = dir.path().join("ok.parquet");
    write_parquet(&l, &s, &p).unwrap();
    // Rebuild with a float user_id column, which cannot be an id.
    let f = std::fs::File::open(&p).unwrap();
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let b = r.into_iter().next().unwrap().unwrap();
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut cols = b.columns().to_vec();
    fields.insert(0, Field::new("user_id", DataType::Float32, false));
    cols.insert(0, Arc::new(Float32Array::from(vec![1.5, 2.0, 3.0])));
    let b = RecordBatch::try_new(Arc::new(AS::new(fields)), cols).unwrap();
    let p = dir.path().join("float_ids.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&p).unwrap(), b.schema(), None)
            .unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let t = read_log(&p, &s, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        t.contains("float_ids.parquet: column `user_id`: expected a string or integer column (ids), found Arrow type Float32"),
        "{t}"
    );
}

#[test]
fn writers_are_atomic_and_refuse_unwritable_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let p = dir.path().join("log.csv");
    write_csv(&log(10, 1), &s, &p).unwrap();
    let before = std::fs::read(&p).unwrap();
    let mut bad = log(10, 2);
    if let Some((_, RawColumn::MultiHot { tokens, .. })) =
        bad.columns.iter_mut().find(|(n, _)| n == "item_tags")
    {
        *tokens = std::iter::once("a;b")
            .chain(tokens.iter().skip(1))
            .collect();
    }
    let t = write_csv(&bad, &s, &p).unwrap_err().to_string();
    assert!(
        t.contains("column `item_tags`: token \"a;b\" is empty or contains the separator \";\""),
        "{t}"
    );
    assert_eq!(
        std::fs::read(&p).unwrap(),
        before,
        "a failed write leaves the old file"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
}
