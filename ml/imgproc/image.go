// Package imgproc decodes images safely and turns them into model inputs:
// colour conversion, orientation, crops, resizes and affine warps, all as one
// bilinear sampling step straight into float tensors.
package imgproc

import (
	"image"
	"image/color"
)

// RGB is an 8-bit, 3-channel image with interleaved R,G,B samples, rows
// top to bottom. It is the one pixel format the models are fed from.
type RGB struct {
	W, H int
	Pix  []uint8 // len = W*H*3
}

// NewRGB allocates a black image.
func NewRGB(w, h int) *RGB {
	return &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
}

// At returns the pixel at (x, y); the caller keeps x, y inside the image.
func (m *RGB) At(x, y int) (r, g, b uint8) {
	i := (y*m.W + x) * 3
	return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
}

// ToImage converts back to a standard image (for tests and debugging output).
func (m *RGB) ToImage() *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 0xff
	}
	return out
}

// FromImage converts any decoded image to RGB, with fast paths for the
// layouts the standard decoders return. Alpha is dropped (composited on black
// for premultiplied sources, which is what their stored values already are).
func FromImage(src image.Image) *RGB {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	out := NewRGB(w, h)
	p := out.Pix
	switch s := src.(type) {
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi := s.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := s.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bb := color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
				o := (y*w + x) * 3
				p[o], p[o+1], p[o+2] = r, g, bb
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := s.Pix[(y)*s.Stride:]
			for x := 0; x < w; x++ {
				o := (y*w + x) * 3
				copy(p[o:o+3], row[x*4:x*4+3])
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := s.Pix[(y)*s.Stride:]
			for x := 0; x < w; x++ {
				o := (y*w + x) * 3
				copy(p[o:o+3], row[x*4:x*4+3])
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := s.Pix[(y)*s.Stride:]
			for x := 0; x < w; x++ {
				o := (y*w + x) * 3
				v := row[x]
				p[o], p[o+1], p[o+2] = v, v, v
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				r, g, bb, _ := src.At(b.Min.X+x, b.Min.Y+y).RGBA()
				o := (y*w + x) * 3
				p[o], p[o+1], p[o+2] = uint8(r>>8), uint8(g>>8), uint8(bb>>8)
			}
		}
	}
	return out
}
