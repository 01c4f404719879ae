package lb

import "testing"

// plainFieldValueBytewise is plainFieldValue's definition, a byte at a time.
func plainFieldValueBytewise(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

func TestPlainFieldValue(t *testing.T) {
	base := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"
	for pos := range len(base) {
		for c := range 256 {
			v := base[:pos] + string([]byte{byte(c)}) + base[pos+1:]
			if got, want := plainFieldValue(v), plainFieldValueBytewise(v); got != want {
				t.Fatalf("%q: %v, want %v", v, got, want)
			}
		}
	}
}

// FuzzPlainFieldValue: the word-at-a-time check agrees with the
// byte-at-a-time one on any value.
func FuzzPlainFieldValue(f *testing.F) {
	for _, s := range []string{"", "text/html", "a\tb", "caf\xc3\xa9", "x\x7fy", "0123456789abcdef\x00", "~~~~~~~~~~~~~~~~\x1f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := plainFieldValue(v), plainFieldValueBytewise(v); got != want {
			t.Fatalf("%q: %v, want %v", v, got, want)
		}
	})
}
