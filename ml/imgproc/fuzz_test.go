package imgproc

import (
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder entry point: it must
// return an image or an error wrapping ErrInvalidImage, never panic, and
// never return an image beyond the limits.
//
//	go test ./ml/imgproc -run '^$' -fuzz FuzzDecode -fuzztime 60s
//
// The seeds are small (a real photo shrunk to 24x18, in each format, plus
// a JPEG carrying an EXIF orientation): the fuzzer minimises every input
// that finds new coverage, and minimising a 30 KB photo stalls it.
func FuzzDecode(f *testing.F) {
	small := smallPhoto(f)
	jpg := encode(f, small.ToImage(), "jpeg")
	f.Add(jpg)
	f.Add(jpg[:len(jpg)/2])
	f.Add(withExifOrientation(jpg, 6))
	f.Add(encode(f, small.ToImage(), "png"))
	f.Add(encode(f, small.ToImage(), "bmp"))
	f.Add(pngHeader(20000, 20000))
	f.Add([]byte{})
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "))
	limits := Limits{MaxBytes: 1 << 20, MaxPixels: 4_000_000, MaxSide: 4096}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Decode(data, limits)
		if err != nil {
			if !errors.Is(err, ErrInvalidImage) {
				t.Fatalf("error does not wrap ErrInvalidImage: %v", err)
			}
			return
		}
		if d.W*d.H > limits.MaxPixels || len(d.Pix) != d.W*d.H*3 {
			t.Fatalf("decoded %dx%d with %d bytes", d.W, d.H, len(d.Pix))
		}
	})
}

// smallPhoto is obama_small.jpg shrunk to 24x18.
func smallPhoto(t testing.TB) *RGB {
	d, err := Decode(readPhoto(t, "obama_small.jpg"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Sample(24, 18, ResizeMap(0, 0, float64(d.W), float64(d.H), 24, 18), Border{})
}

// withExifOrientation inserts an APP1 Exif segment holding only the
// orientation tag right after the JPEG's SOI marker.
func withExifOrientation(jpg []byte, o uint16) []byte {
	tiff := []byte("II*\x00\x08\x00\x00\x00")             // little endian, IFD0 at 8
	tiff = binary.LittleEndian.AppendUint16(tiff, 1)      // one entry
	tiff = binary.LittleEndian.AppendUint16(tiff, 0x0112) // orientation
	tiff = binary.LittleEndian.AppendUint16(tiff, 3)      // SHORT
	tiff = binary.LittleEndian.AppendUint32(tiff, 1)      // count
	tiff = binary.LittleEndian.AppendUint16(tiff, o)      // value
	tiff = append(tiff, 0, 0, 0, 0, 0, 0)                 // padding + next IFD
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, 0xFF, 0xE1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(seg)+2))
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}
