package imgproc

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/image/bmp"
)

func readPhoto(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "faces", name))
	require.NoError(t, err)
	return b
}

// pngHeader returns a PNG signature and a valid IHDR chunk claiming w x h
// pixels, with no image data: decoding must refuse it from the header alone.
func pngHeader(w, h uint32) []byte {
	var buf bytes.Buffer
	buf.Write([]byte("\x89PNG\r\n\x1a\n"))
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&buf, binary.BigEndian, uint32(len(ihdr)))
	buf.Write(chunk)
	binary.Write(&buf, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return buf.Bytes()
}

func encode(t testing.TB, m image.Image, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch format {
	case "png":
		require.NoError(t, png.Encode(&buf, m))
	case "jpeg":
		require.NoError(t, jpeg.Encode(&buf, m, &jpeg.Options{Quality: 95}))
	case "bmp":
		require.NoError(t, bmp.Encode(&buf, m))
	}
	return buf.Bytes()
}

func TestDecodeRefusesBadInput(t *testing.T) {
	photo := readPhoto(t, "obama_1.jpg")
	corrupt := append([]byte(nil), photo...)
	for i := 600; i < len(corrupt); i += 7 {
		corrupt[i] ^= 0x5a
	}
	cases := []struct {
		name     string
		data     []byte
		limits   Limits
		tooLarge bool
	}{
		{name: "zero bytes", data: nil},
		{name: "text", data: []byte("hello, this is not an image at all")},
		{name: "truncated jpeg", data: photo[:len(photo)/3]},
		{name: "corrupt jpeg", data: corrupt},
		{name: "jpeg header only", data: photo[:20]},
		{name: "20000x20000 png header", data: pngHeader(20000, 20000), tooLarge: true},
		{name: "zero width png header", data: pngHeader(0, 10)},
		{name: "over the byte limit", data: photo, limits: Limits{MaxBytes: 1000}, tooLarge: true},
		{name: "over the pixel limit", data: photo, limits: Limits{MaxPixels: 1000}, tooLarge: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.data, c.limits)
			require.ErrorIs(t, err, ErrInvalidImage)
			if c.tooLarge {
				require.ErrorIs(t, err, ErrTooLarge)
			}
		})
	}
}

func TestDecodeRefusesHugeHeaderWithoutAllocating(t *testing.T) {
	data := pngHeader(20000, 20000)
	allocs := testing.AllocsPerRun(5, func() {
		_, err := Decode(data, Limits{})
		require.ErrorIs(t, err, ErrTooLarge)
	})
	// A decode would allocate 1.6 GB in one slice; the header check makes a
	// handful of small allocations.
	require.Less(t, allocs, 50.0)
	var ms1, ms2 runtimeMem
	ms1.read()
	_, _ = Decode(data, Limits{})
	ms2.read()
	require.Less(t, ms2.total-ms1.total, uint64(1<<20), "refusing the header must not allocate the pixels")
}

func TestDecodeFormats(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 4, 3))
	for y := 0; y < 3; y++ {
		for x := 0; x < 4; x++ {
			src.Set(x, y, color.NRGBA{uint8(60 * x), uint8(80 * y), 200, 255})
		}
	}
	for _, f := range []string{"png", "bmp"} {
		t.Run(f, func(t *testing.T) {
			d, err := Decode(encode(t, src, f), Limits{})
			require.NoError(t, err)
			require.Equal(t, f, d.Format)
			require.Equal(t, 4, d.W)
			require.Equal(t, 3, d.H)
			r, g, b := d.At(3, 2)
			require.Equal(t, [3]uint8{180, 160, 200}, [3]uint8{r, g, b})
		})
	}
	d, err := Decode(readPhoto(t, "astronaut_collins.png"), Limits{})
	require.NoError(t, err)
	require.Equal(t, [2]int{512, 512}, [2]int{d.W, d.H})
	d, err = Decode(readPhoto(t, "obama_1.jpg"), Limits{})
	require.NoError(t, err)
	require.Equal(t, "jpeg", d.Format)
}

func TestDecodeAppliesExifOrientation(t *testing.T) {
	// The liveness photos are stored landscape with orientation 6 (rotate
	// 90° clockwise to view).
	raw := readPhoto(t, "liveness_real_T1.jpg")
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	require.NoError(t, err)
	d, err := Decode(raw, Limits{})
	require.NoError(t, err)
	require.Equal(t, 6, d.Orientation)
	require.Equal(t, cfg.Width, d.H)
	require.Equal(t, cfg.Height, d.W)
}

func TestOrient(t *testing.T) {
	// 2x1 image: red, green. Each orientation puts red somewhere known.
	m := &RGB{W: 2, H: 1, Pix: []uint8{255, 0, 0, 0, 255, 0}}
	cases := []struct {
		o          int
		w, h       int
		redX, redY int
	}{
		{1, 2, 1, 0, 0}, {2, 2, 1, 1, 0}, {3, 2, 1, 1, 0}, {4, 2, 1, 0, 0},
		{5, 1, 2, 0, 0}, {6, 1, 2, 0, 0}, {7, 1, 2, 0, 1}, {8, 1, 2, 0, 1},
	}
	for _, c := range cases {
		out := Orient(m, c.o)
		require.Equal(t, [2]int{c.w, c.h}, [2]int{out.W, out.H}, "orientation %d", c.o)
		r, _, _ := out.At(c.redX, c.redY)
		require.Equal(t, uint8(255), r, "orientation %d", c.o)
	}
}

func TestSampleResizeAndBorder(t *testing.T) {
	m := &RGB{W: 2, H: 2, Pix: []uint8{0, 0, 0, 100, 100, 100, 100, 100, 100, 200, 200, 200}}
	// Identity mapping reproduces the pixels.
	out := make([]float32, 4)
	m.SampleInto(out, 2, 2, Affine{A: 1, E: 1}, GrayPlane, Raw, Border{})
	require.InDeltaSlice(t, []float64{0, 100, 100, 200}, f64(out), 0.01)
	// Outside with a fill colour reads the fill; with replicate, the edge.
	one := make([]float32, 3)
	m.SampleInto(one, 1, 1, Affine{C: -5, F: -5}, RGBPlanes, Raw, Border{Fill: [3]uint8{7, 8, 9}})
	require.Equal(t, []float32{7, 8, 9}, one)
	m.SampleInto(one, 1, 1, Affine{C: 9, F: 9}, RGBPlanes, Raw, Border{Replicate: true})
	require.Equal(t, []float32{200, 200, 200}, one)
	// Normalisation and channel order.
	c := &RGB{W: 1, H: 1, Pix: []uint8{10, 20, 30}}
	c.SampleInto(one, 1, 1, Affine{A: 1, E: 1}, BGRPlanes, Uniform(10, 0.5), Border{})
	require.Equal(t, []float32{10, 5, 0}, one)
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func TestDecodeReadsSyntheticExif(t *testing.T) {
	jpg := encode(t, smallPhoto(t).ToImage(), "jpeg")
	d, err := Decode(withExifOrientation(jpg, 8), Limits{})
	require.NoError(t, err)
	require.Equal(t, 8, d.Orientation)
	require.Equal(t, [2]int{18, 24}, [2]int{d.W, d.H})
}

// TestSamplePathsAgreeWithReference checks the fast paths (axis-aligned
// tables, rotated interior) against the reference bilinear on a real photo,
// including samples across the border.
func TestSamplePathsAgreeWithReference(t *testing.T) {
	d, err := Decode(readPhoto(t, "obama_small.jpg"), Limits{})
	require.NoError(t, err)
	transforms := map[string]Affine{
		"downscale":  ResizeMap(-20, -10, 400, 300, 160, 120),
		"upscale":    ResizeMap(100, 40, 50, 60, 112, 112),
		"rotated":    {A: 0.9, B: -0.3, C: 120, D: 0.3, E: 0.9, F: -5},
		"rotated-in": {A: 0.5, B: 0.1, C: 100, D: -0.1, E: 0.5, F: 80},
	}
	for name, tr := range transforms {
		for _, b := range []Border{{}, {Replicate: true}, {Fill: [3]uint8{9, 99, 199}}} {
			// 320x240 is above parallelMinPixels: rows are split across cores.
			for _, size := range [][2]int{{40, 30}, {320, 240}} {
				w, h := size[0], size[1]
				got := make([]float32, 3*w*h)
				d.SampleInto(got, w, h, tr, RGBPlanes, Raw, b)
				clip := image.Rect(0, 0, d.W, d.H)
				fill := [3]float32{float32(b.Fill[0]), float32(b.Fill[1]), float32(b.Fill[2])}
				for v := range h {
					for u := range w {
						x, y := tr.Apply(float64(u), float64(v))
						r, g, bl := d.bilinear(x, y, clip, b.Replicate, fill)
						o := v*w + u
						require.InDelta(t, r, got[o], 0.01, "%s %v (%d,%d)", name, b, u, v)
						require.InDelta(t, g, got[w*h+o], 0.01, "%s %v (%d,%d)", name, b, u, v)
						require.InDelta(t, bl, got[2*w*h+o], 0.01, "%s %v (%d,%d)", name, b, u, v)
					}
				}
			}
		}
	}
}

// withPNGExif inserts an eXIf chunk with the orientation tag after IHDR.
func withPNGExif(t *testing.T, png []byte, o uint16) []byte {
	t.Helper()
	ihdrEnd := 8 + 8 + 13 + 4
	tiff := []byte("MM\x00*\x00\x00\x00\x08")
	tiff = binary.BigEndian.AppendUint16(tiff, 1)
	tiff = binary.BigEndian.AppendUint16(tiff, 0x0112)
	tiff = binary.BigEndian.AppendUint16(tiff, 3)
	tiff = binary.BigEndian.AppendUint32(tiff, 1)
	tiff = binary.BigEndian.AppendUint16(tiff, o)
	tiff = append(tiff, 0, 0, 0, 0, 0, 0)
	chunk := append([]byte("eXIf"), tiff...)
	var buf bytes.Buffer
	buf.Write(png[:ihdrEnd])
	_ = binary.Write(&buf, binary.BigEndian, uint32(len(tiff)))
	buf.Write(chunk)
	_ = binary.Write(&buf, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	buf.Write(png[ihdrEnd:])
	return buf.Bytes()
}

func TestDecodeReadsPNGExif(t *testing.T) {
	src := smallPhoto(t)
	data := withPNGExif(t, encode(t, src.ToImage(), "png"), 3)
	d, err := Decode(data, Limits{})
	require.NoError(t, err)
	require.Equal(t, 3, d.Orientation)
	r, g, b := d.At(0, 0)
	r2, g2, b2 := src.At(src.W-1, src.H-1)
	require.Equal(t, [3]uint8{r2, g2, b2}, [3]uint8{r, g, b}, "rotated 180°")
	// Malformed EXIF is ignored, not fatal.
	bad := withPNGExif(t, encode(t, src.ToImage(), "png"), 42)
	d, err = Decode(bad, Limits{})
	require.NoError(t, err)
	require.Equal(t, 1, d.Orientation)
}
