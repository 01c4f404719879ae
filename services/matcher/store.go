package matcher

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store keeps the templates and person groups in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store on pool (migrated with Migrate).
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// personHash is the shard key of a person: FNV-1a 32-bit of its id.
func personHash(personID string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(personID))
	return h.Sum32()
}

func encodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decodeVector(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("vector of %d bytes", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// AddTemplates upserts templates by (workspace, template id) in one statement.
func (s *Store) AddTemplates(ctx context.Context, workspace string, ts []Template) error {
	if len(ts) == 0 {
		return nil
	}
	ids := make([]string, len(ts))
	persons := make([]string, len(ts))
	hashes := make([]int64, len(ts))
	models := make([]string, len(ts))
	vecs := make([][]byte, len(ts))
	for i, t := range ts {
		ids[i], persons[i], models[i] = t.ID, t.PersonID, t.ModelID
		hashes[i] = int64(personHash(t.PersonID))
		vecs[i] = encodeVector(t.Vector)
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO matcher_templates (workspace_id, template_id, person_id, person_hash, model_id, vector)
		SELECT $1, t.id, t.person, t.hash, t.model, t.vec
		FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::bytea[]) AS t(id, person, hash, model, vec)
		ON CONFLICT (workspace_id, template_id) DO UPDATE
		SET person_id = excluded.person_id, person_hash = excluded.person_hash,
		    model_id = excluded.model_id, vector = excluded.vector, updated_at = now()`,
		workspace, ids, persons, hashes, models, vecs)
	if err != nil {
		return fmt.Errorf("store templates: %w", err)
	}
	return nil
}

// RemoveTemplates deletes templates by id and every template and group membership of
// the persons; it returns the number of templates deleted.
func (s *Store) RemoveTemplates(ctx context.Context, workspace string, templateIDs, personIDs []string) (int, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(templateIDs) > 0 {
			tag, err := tx.Exec(ctx, `DELETE FROM matcher_templates WHERE workspace_id = $1 AND template_id = ANY($2)`, workspace, templateIDs)
			if err != nil {
				return err
			}
			n += tag.RowsAffected()
		}
		if len(personIDs) > 0 {
			tag, err := tx.Exec(ctx, `DELETE FROM matcher_templates WHERE workspace_id = $1 AND person_id = ANY($2)`, workspace, personIDs)
			if err != nil {
				return err
			}
			n += tag.RowsAffected()
			if _, err := tx.Exec(ctx, `DELETE FROM matcher_person_groups WHERE workspace_id = $1 AND person_id = ANY($2)`, workspace, personIDs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("remove templates: %w", err)
	}
	return int(n), nil
}

// SetPersonGroups replaces a person's groups.
func (s *Store) SetPersonGroups(ctx context.Context, workspace, personID string, groups []string) error {
	var err error
	if len(groups) == 0 {
		_, err = s.pool.Exec(ctx, `DELETE FROM matcher_person_groups WHERE workspace_id = $1 AND person_id = $2`, workspace, personID)
	} else {
		_, err = s.pool.Exec(ctx, `
			INSERT INTO matcher_person_groups (workspace_id, person_id, person_hash, group_ids) VALUES ($1, $2, $3, $4)
			ON CONFLICT (workspace_id, person_id) DO UPDATE SET group_ids = excluded.group_ids`,
			workspace, personID, int64(personHash(personID)), groups)
	}
	if err != nil {
		return fmt.Errorf("store person groups: %w", err)
	}
	return nil
}

// Shard selects the rows of one shard: person_hash % Count = Index.
type Shard struct{ Index, Count int }

// Load streams the shard's person groups, then its templates, into the loader. The
// templates come through binary COPY (no per-row protocol overhead, bytea as is).
func (s *Store) Load(ctx context.Context, shard Shard, l loader) (int, error) {
	if shard.Count <= 0 {
		shard = Shard{0, 1}
	}
	rows, err := s.pool.Query(ctx, `SELECT workspace_id, person_id, group_ids FROM matcher_person_groups WHERE person_hash % $1 = $2`, shard.Count, shard.Index)
	if err != nil {
		return 0, fmt.Errorf("load person groups: %w", err)
	}
	for rows.Next() {
		var ws, p string
		var gs []string
		if err := rows.Scan(&ws, &p, &gs); err != nil {
			rows.Close()
			return 0, fmt.Errorf("load person groups: %w", err)
		}
		l.setGroups(ws, p, gs)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("load person groups: %w", err)
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("load templates: %w", err)
	}
	defer conn.Release()
	pr, pw := io.Pipe()
	copyErr := make(chan error, 1)
	query := fmt.Sprintf(`COPY (SELECT workspace_id, template_id, person_id, model_id, vector FROM matcher_templates
		WHERE person_hash %% %d = %d) TO STDOUT (FORMAT binary)`, shard.Count, shard.Index)
	go func() {
		// pgconn writes one row per Write; batching them into 1 MiB writes keeps the
		// pipe from handing over (and switching goroutines) once per row.
		bw := bufio.NewWriterSize(pw, 1<<20)
		_, err := conn.Conn().PgConn().CopyTo(ctx, bw, query)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		copyErr <- err
	}()
	n, perr := readTemplateCopy(bufio.NewReaderSize(pr, 1<<20), l)
	if perr != nil {
		pr.CloseWithError(perr)
	}
	cerr := <-copyErr
	if perr != nil {
		return n, fmt.Errorf("load templates: %w", perr)
	}
	if cerr != nil {
		return n, fmt.Errorf("load templates: %w", cerr)
	}
	return n, nil
}

var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// readTemplateCopy parses PostgreSQL's binary COPY stream of
// (workspace_id, template_id, person_id, model_id, vector) rows and adds them in
// batches, one workspace at a time.
func readTemplateCopy(r *bufio.Reader, l loader) (int, error) {
	head := make([]byte, len(copySignature)+8)
	if _, err := io.ReadFull(r, head); err != nil {
		return 0, fmt.Errorf("copy header: %w", err)
	}
	if string(head[:len(copySignature)]) != string(copySignature) {
		return 0, errors.New("copy header: bad signature")
	}
	if ext := binary.BigEndian.Uint32(head[len(copySignature)+4:]); ext > 0 {
		if _, err := r.Discard(int(ext)); err != nil {
			return 0, err
		}
	}
	var (
		n       int
		batches = map[string][]Template{} // by workspace
		arenas  = map[string][]float32{}  // their vectors, reused once indexed
		b4      [4]byte
	)
	flush := func(ws string) error {
		if len(batches[ws]) == 0 {
			return nil
		}
		err := l.add(ws, batches[ws])
		batches[ws] = batches[ws][:0]
		arenas[ws] = arenas[ws][:0]
		return err
	}
	var field []byte
	for {
		var b2 [2]byte
		if _, err := io.ReadFull(r, b2[:]); err != nil {
			return n, fmt.Errorf("copy row: %w", err)
		}
		nf := int16(binary.BigEndian.Uint16(b2[:]))
		if nf == -1 {
			break
		}
		if nf != 5 {
			return n, fmt.Errorf("copy row: %d fields", nf)
		}
		var strs [4]string
		var vec []float32
		for i := 0; i < 5; i++ {
			if _, err := io.ReadFull(r, b4[:]); err != nil {
				return n, err
			}
			ln := int32(binary.BigEndian.Uint32(b4[:]))
			if ln < 0 {
				return n, errors.New("copy row: null field")
			}
			if cap(field) < int(ln) {
				field = make([]byte, ln)
			}
			field = field[:ln]
			if _, err := io.ReadFull(r, field); err != nil {
				return n, err
			}
			if i < 4 {
				strs[i] = string(field)
				continue
			}
			if len(field)%4 != 0 {
				return n, fmt.Errorf("copy row: vector of %d bytes", len(field))
			}
			ws := strs[0]
			a := arenas[ws]
			if cap(a)-len(a) < len(field)/4 {
				a = make([]float32, 0, 8192*len(field)/4) // earlier rows keep the old one
			}
			start := len(a)
			for j := 0; j < len(field); j += 4 {
				a = append(a, math.Float32frombits(binary.LittleEndian.Uint32(field[j:])))
			}
			arenas[ws] = a
			vec = a[start:len(a):len(a)]
		}
		// Rows were normalised before they were stored; the check still guards
		// against a row written by something else.
		if err := normalizeInPlace(vec); err != nil {
			return n, fmt.Errorf("template %s: %w", strs[1], err)
		}
		ws := strs[0]
		batches[ws] = append(batches[ws], Template{ID: strs[1], PersonID: strs[2], ModelID: strs[3], Vector: vec})
		n++
		if len(batches[ws]) >= 8192 {
			if err := flush(ws); err != nil {
				return n, err
			}
		}
	}
	for ws := range batches {
		if err := flush(ws); err != nil {
			return n, err
		}
	}
	return n, nil
}
