//! `Graph::concat_cols` copies blocks row by row; it must equal `ndarray::concatenate`.

use dmtl_tensor::{Graph, ParamStore};
use ndarray::{Array2, Axis};

#[test]
fn concat_cols_equals_ndarray_concatenate() {
    let store = ParamStore::new();
    for rows in [0usize, 1, 7] {
        let parts: Vec<Array2<f32>> = [3usize, 1, 0, 16, 5]
            .iter()
            .enumerate()
            .map(|(p, &c)| {
                Array2::from_shape_fn((rows, c), |(i, j)| (p * 1000 + i * 10 + j) as f32)
            })
            .collect();
        // A transposed block: not contiguous along its rows.
        let t = Array2::from_shape_fn((4, rows), |(j, i)| -((i * 10 + j) as f32)).reversed_axes();
        let mut all = parts.clone();
        all.push(t);
        let views: Vec<_> = all.iter().map(|a| a.view()).collect();
        let want = ndarray::concatenate(Axis(1), &views).unwrap();
        let g = Graph::new(&store);
        let vars: Vec<_> = all.iter().map(|a| g.input(a.clone())).collect();
        let out = g.concat_cols(&vars);
        let got = g.take_value(out);
        assert_eq!(got, want, "rows {rows}");
    }
}
