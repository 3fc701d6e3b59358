package sqlitedb

import (
	"context"
	"path/filepath"
	"testing"
)

func TestExecRowsWritesEveryRowOnce(t *testing.T) {
	ctx := context.Background()
	db, w, err := OpenDaemon(ctx, filepath.Join(t.TempDir(), "t.db"), []Step{{SQL: `CREATE TABLE t (k INTEGER, v INTEGER, PRIMARY KEY (k, v))`}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	defer w.Close()
	for k, n := range []int{0, 1, RowsPerStatement - 1, RowsPerStatement, RowsPerStatement + 1, 2*RowsPerStatement + 37} {
		tx, err := w.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = ExecRows(ctx, tx, Rows{Head: `INSERT INTO t (k, v) VALUES `, Group: "(?, ?)"}, n,
			func(i int, vals []any) []any { return append(vals, k, i) })
		if err == nil {
			// Delete the odd rows again, with k as the statement's own value.
			err = ExecRows(ctx, tx, Rows{Head: `DELETE FROM t WHERE k = ? AND v IN (`, Group: "?", Tail: ")", Prefix: []any{k}}, n/2,
				func(i int, vals []any) []any { return append(vals, 2*i+1) })
		}
		if err != nil {
			t.Fatalf("%d rows: %v", n, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var count, sum int
		if err := db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(v), 0) FROM t WHERE k = ?`, k).Scan(&count, &sum); err != nil {
			t.Fatal(err)
		}
		wantCount, wantSum := 0, 0
		for i := 0; i < n; i++ {
			if i%2 == 0 || i >= 2*(n/2) {
				wantCount++
				wantSum += i
			}
		}
		if count != wantCount || sum != wantSum {
			t.Errorf("%d rows: %d left (sum %d), want %d (sum %d)", n, count, sum, wantCount, wantSum)
		}
	}
}
