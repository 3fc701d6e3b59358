package sqlitedb

import (
	"context"
	"database/sql"
	"strings"
)

// RowsPerStatement is how many rows ExecRows puts in one statement: a
// write of a few hundred rows then runs a handful of statements, not
// hundreds (each one a round through database/sql and the driver).
const RowsPerStatement = 100

// Rows shapes the statements ExecRows runs: Head, then one Group of
// placeholders per row joined by ", ", then Tail. Prefix holds the values
// of Head's own placeholders, repeated for each statement.
type Rows struct {
	Head, Group, Tail string
	Prefix            []any
}

// ExecRows runs r in tx for n rows, RowsPerStatement to a statement; args
// appends the values of row i.
func ExecRows(ctx context.Context, tx *sql.Tx, r Rows, n int, args func(i int, vals []any) []any) error {
	var st *sql.Stmt
	size := 0 // rows in st
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	per := strings.Count(r.Group, "?")
	for lo := 0; lo < n; lo += RowsPerStatement {
		hi := min(n, lo+RowsPerStatement)
		if st == nil || size != hi-lo {
			if st != nil {
				st.Close()
			}
			var err error
			if st, err = tx.PrepareContext(ctx, r.Head+strings.Repeat(r.Group+", ", hi-lo-1)+r.Group+r.Tail); err != nil {
				return err
			}
			size = hi - lo
		}
		vals := make([]any, 0, len(r.Prefix)+(hi-lo)*per)
		vals = append(vals, r.Prefix...)
		for i := lo; i < hi; i++ {
			vals = args(i, vals)
		}
		if _, err := st.ExecContext(ctx, vals...); err != nil {
			return err
		}
	}
	return nil
}
