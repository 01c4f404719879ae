package imgproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // register JPEG
	_ "image/png"  // register PNG

	_ "golang.org/x/image/bmp"  // register BMP
	_ "golang.org/x/image/webp" // register WebP
)

// ErrInvalidImage is wrapped by every decoding failure: empty, corrupt,
// truncated or unsupported input, and input beyond the limits.
var ErrInvalidImage = errors.New("invalid image")

// ErrTooLarge is wrapped (with ErrInvalidImage) when the input exceeds Limits.
var ErrTooLarge = errors.New("image too large")

// Limits bound what Decode accepts, so one request cannot exhaust memory.
type Limits struct {
	// MaxBytes is the largest encoded size accepted. Default 20 MiB.
	MaxBytes int `yaml:"max_bytes"`
	// MaxPixels is the largest width*height accepted. Default 40 megapixels
	// (a 40 MP image decodes into 160 MB of RGBA, then 120 MB of RGB).
	MaxPixels int `yaml:"max_pixels"`
	// MaxSide is the largest width or height accepted. Default 16384.
	MaxSide int `yaml:"max_side"`
}

// DefaultLimits are the limits used for zero fields.
var DefaultLimits = Limits{MaxBytes: 20 << 20, MaxPixels: 40_000_000, MaxSide: 16384}

// WithDefaults fills zero fields from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultLimits.MaxPixels
	}
	if l.MaxSide <= 0 {
		l.MaxSide = DefaultLimits.MaxSide
	}
	return l
}

// Decoded is an upright RGB image and what was learnt while decoding it.
type Decoded struct {
	*RGB
	Format      string // jpeg, png, webp, bmp
	Orientation int    // EXIF orientation that was applied (1 = none)
}

// Decode checks the encoded size, reads only the header to check the pixel
// dimensions (so a tiny file that claims 20000x20000 pixels is refused before
// anything is allocated), then decodes, converts to RGB and applies the EXIF
// orientation. Every failure wraps ErrInvalidImage.
func Decode(data []byte, limits Limits) (img *Decoded, err error) {
	limits = limits.WithDefaults()
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidImage)
	}
	if len(data) > limits.MaxBytes {
		return nil, fmt.Errorf("%w: %w: %d bytes, limit %d", ErrInvalidImage, ErrTooLarge, len(data), limits.MaxBytes)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return nil, fmt.Errorf("%w: not a JPEG, PNG, WebP or BMP image", ErrInvalidImage)
		}
		return nil, fmt.Errorf("%w: header: %v", ErrInvalidImage, err)
	}
	if err := checkSize(cfg.Width, cfg.Height, limits); err != nil {
		return nil, err
	}
	// The standard decoders do not panic on bad input as far as we know, but a
	// decoder bug must never take the process down with it.
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("%w: decoder failure: %v", ErrInvalidImage, r)
		}
	}()
	m, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidImage, format, err)
	}
	b := m.Bounds()
	if b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, fmt.Errorf("%w: %s: decoded size %dx%d differs from header %dx%d", ErrInvalidImage, format, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}
	orientation := exifOrientation(data, format)
	return &Decoded{RGB: Orient(FromImage(m), orientation), Format: format, Orientation: orientation}, nil
}

func checkSize(w, h int, l Limits) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: empty dimensions %dx%d", ErrInvalidImage, w, h)
	}
	if w > l.MaxSide || h > l.MaxSide || int64(w)*int64(h) > int64(l.MaxPixels) {
		return fmt.Errorf("%w: %w: %dx%d pixels, limit %d pixels and %d per side", ErrInvalidImage, ErrTooLarge, w, h, l.MaxPixels, l.MaxSide)
	}
	return nil
}
