package tasks

import (
	"archive/zip"
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestObjectKeyOf(t *testing.T) {
	tests := []struct {
		raw, want string
		ok        bool
	}{
		{"ws/a/b.jpg", "ws/a/b.jpg", true},
		{"/ws/a/b.jpg", "ws/a/b.jpg", true},
		{"s3://vigil/ws/a/b.jpg", "ws/a/b.jpg", true},
		{"http://127.0.0.1:9000/vigil/ws/a/b.jpg", "ws/a/b.jpg", true},
		{"https://s3.example/vigil/ws/a/b.jpg", "ws/a/b.jpg", true},
		{"s3://other-bucket/ws/a/b.jpg", "", false},
		{"http://evil.example/elsewhere/b.jpg", "", false},
		{"ftp://vigil/ws/b.jpg", "", false},
		{"s3://vigil/", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := objectKeyOf(tt.raw, "vigil")
			if !tt.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCSVItems(t *testing.T) {
	in := "\ufeffExternal_ID, Name ,URL\n" +
		"a,Alice,ws/p/a1.jpg\n" +
		"a,,ws/p/a2.jpg\n" + // second photo of a; the first row's name wins
		"b,,\n" + // no photo; name defaults to the id
		",Nameless,ws/p/x.jpg\n" +
		"c,Carol,other/p/c.jpg\n" +
		"d,\"Quoted, Name\",s3://vigil/ws/p/d.jpg\n" +
		"e,too,many,fields\n" +
		"f,Bad ..,ws/../other/x.jpg\n"
	items, err := csvItems(strings.NewReader(in), "ws", "vigil")
	require.NoError(t, err)
	var got []string
	for _, it := range items {
		if it.Reject != "" {
			got = append(got, "reject "+it.Reject)
			continue
		}
		var keys []string
		for _, p := range it.Photos {
			keys = append(keys, p.ObjectKey)
		}
		got = append(got, it.ExternalID+"|"+it.Name+"|"+strings.Join(keys, ","))
	}
	require.Equal(t, []string{
		"a|Alice|ws/p/a1.jpg,ws/p/a2.jpg",
		"b|b|",
		"reject row 5: empty external id",
		`reject row 6: url: object "other/p/c.jpg" is not under the workspace's prefix "ws/"`,
		"d|Quoted, Name|ws/p/d.jpg",
		"reject row 8: want 3 fields (external_id,name,url)",
		`reject row 9: url: object "ws/../other/x.jpg" is not under the workspace's prefix "ws/"`,
	}, got)

	_, err = csvItems(strings.NewReader("id,name,url\n"), "ws", "vigil")
	require.ErrorContains(t, err, "csv header")
	_, err = csvItems(strings.NewReader(""), "ws", "vigil")
	require.Error(t, err)
}

func TestZipItems(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range []string{
		"alice.jpg", "bob/1.png", "bob/2.JPEG", "notes.txt", "__MACOSX/._alice.jpg",
		".DS_Store", "deep/er/x.jpg", "carol.webp", "dir/",
	} {
		_, err := zw.Create(name)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)

	var got []string
	for _, it := range zipItems(zr) {
		if it.Reject != "" {
			got = append(got, "reject "+it.Reject)
			continue
		}
		var names []string
		for _, p := range it.Photos {
			names = append(names, p.Name)
		}
		got = append(got, it.ExternalID+": "+strings.Join(names, ","))
	}
	require.Equal(t, []string{
		"alice: alice.jpg",
		"bob: bob/1.png,bob/2.JPEG",
		"reject notes.txt: not a JPEG, PNG, WebP or BMP file",
		"reject deep/er/x.jpg: nested more than one folder deep",
		"carol: carol.webp",
	}, got)
}
