package tasks

import (
	"archive/zip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"
)

// importItem is one person of an import: from one CSV row group or one zip name.
type importItem struct {
	// Where it came from, for messages: "row 7", "alice.jpg".
	Origin     string
	ExternalID string
	Name       string
	Photos     []photoSource
	// Reject is set for an entry or row that cannot be imported (why); it counts as a
	// failed item.
	Reject string
}

// photoSource is one photo of an item: an entry of the uploaded zip, or an object key.
type photoSource struct {
	Name      string
	ZipEntry  *zip.File
	ObjectKey string
}

// Limits of one import item.
const (
	maxExternalID = 200
	maxName       = 200
	maxPhotoBytes = 10 << 20 // the backend's AddPhoto limit
)

var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".webp": true, ".bmp": true}

// zipItems reads the persons of a zip: `<external_id>.<ext>` is a person with one photo,
// `<external_id>/<any>.<ext>` a person with each photo in the folder. Other entries are
// returned as rejected items.
func zipItems(zr *zip.Reader) (items []importItem) {
	index := map[string]int{}
	for _, f := range zr.File {
		name := f.Name
		if f.FileInfo().IsDir() {
			continue
		}
		base := path.Base(name)
		if strings.HasPrefix(name, "__MACOSX/") || strings.HasPrefix(base, ".") {
			continue // archiver litter, not the user's data
		}
		ext := strings.ToLower(path.Ext(base))
		if !imageExts[ext] {
			items = append(items, importItem{Origin: name, Reject: fmt.Sprintf("%s: not a JPEG, PNG, WebP or BMP file", name)})
			continue
		}
		var id string
		switch parts := strings.Split(name, "/"); len(parts) {
		case 1:
			id = strings.TrimSuffix(base, path.Ext(base))
		case 2:
			id = parts[0]
		default:
			items = append(items, importItem{Origin: name, Reject: fmt.Sprintf("%s: nested more than one folder deep", name)})
			continue
		}
		if err := checkExternalID(id); err != nil {
			items = append(items, importItem{Origin: name, Reject: fmt.Sprintf("%s: %v", name, err)})
			continue
		}
		i, ok := index[id]
		if !ok {
			i = len(items)
			index[id] = i
			items = append(items, importItem{Origin: name, ExternalID: id, Name: id})
		}
		items[i].Photos = append(items[i].Photos, photoSource{Name: name, ZipEntry: f})
	}
	return items
}

func checkExternalID(id string) error {
	switch {
	case id == "":
		return errors.New("empty external id")
	case !utf8.ValidString(id):
		return errors.New("external id is not UTF-8")
	case len(id) > maxExternalID:
		return fmt.Errorf("external id longer than %d bytes", maxExternalID)
	}
	return nil
}

// csvHeader is the header an import CSV must start with.
var csvHeader = []string{"external_id", "name", "url"}

// newCSVRows checks the header of an import CSV and returns a reader at the first row.
func newCSVRows(r io.Reader) (*csv.Reader, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(csvHeader)
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	for i, want := range csvHeader {
		got := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(head[i], "\ufeff")))
		if got != want {
			return nil, fmt.Errorf("csv header: column %d is %q, want %q (header external_id,name,url)", i+1, head[i], want)
		}
	}
	return cr, nil
}

// csvItems reads the persons of a CSV: one row per photo; rows with the same external
// id are one person with several photos (the first row's name wins); an empty url is a
// person without a photo. Bad rows are returned as rejected items, with their row number.
func csvItems(r io.Reader, ws, bucket string) (items []importItem, err error) {
	cr, err := newCSVRows(r)
	if err != nil {
		return nil, err
	}
	reject := func(row int, format string, args ...any) {
		origin := fmt.Sprintf("row %d", row)
		items = append(items, importItem{Origin: origin, Reject: origin + ": " + fmt.Sprintf(format, args...)})
	}
	index := map[string]int{}
	for row := 2; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var perr *csv.ParseError
			if errors.As(err, &perr) && perr.Err == csv.ErrFieldCount {
				reject(row, "want 3 fields (external_id,name,url)")
				continue
			}
			return nil, fmt.Errorf("csv row %d: %w", row, err)
		}
		id, name, rawURL := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1]), strings.TrimSpace(rec[2])
		if err := checkExternalID(id); err != nil {
			reject(row, "%v", err)
			continue
		}
		if name == "" {
			name = id
		}
		if !utf8.ValidString(name) || len(name) > maxName {
			reject(row, "name must be UTF-8, at most %d bytes", maxName)
			continue
		}
		var photo *photoSource
		if rawURL != "" {
			key, err := objectKeyOf(rawURL, bucket)
			if err == nil && (!strings.HasPrefix(key, WorkspacePrefix(ws)) || strings.Contains(key, "..")) {
				err = fmt.Errorf("object %q is not under the workspace's prefix %q", key, WorkspacePrefix(ws))
			}
			if err != nil {
				reject(row, "url: %v", err)
				continue
			}
			photo = &photoSource{Name: key, ObjectKey: key}
		}
		i, ok := index[id]
		if !ok {
			i = len(items)
			index[id] = i
			items = append(items, importItem{Origin: fmt.Sprintf("row %d", row), ExternalID: id, Name: name})
		}
		if photo != nil {
			items[i].Photos = append(items[i].Photos, *photo)
		}
	}
	return items, nil
}

// objectKeyOf turns a CSV url into a key of Vigil's bucket: a plain key, s3://bucket/key,
// or a path-style http(s)://host/bucket/key URL of the object store. Other hosts'
// URLs are not fetched: the import reads only Vigil's own store.
func objectKeyOf(raw, bucket string) (string, error) {
	if !strings.Contains(raw, "://") {
		return strings.TrimPrefix(raw, "/"), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL: %v", err)
	}
	var b, key string
	switch u.Scheme {
	case "s3":
		b, key = u.Host, strings.TrimPrefix(u.Path, "/")
	case "http", "https":
		b, key, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	default:
		return "", fmt.Errorf("scheme %q: want an object key, s3:// or http(s)://", u.Scheme)
	}
	if b != bucket {
		return "", fmt.Errorf("bucket %q is not Vigil's bucket %q", b, bucket)
	}
	if key == "" {
		return "", errors.New("no object key")
	}
	return key, nil
}
