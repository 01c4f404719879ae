package imgproc

// Orient applies an EXIF orientation (1..8) so the image is upright as a
// person would view it. Values outside 2..8 return m unchanged.
func Orient(m *RGB, orientation int) *RGB {
	if orientation < 2 || orientation > 8 {
		return m
	}
	w, h := m.W, m.H
	ow, oh := w, h
	if orientation >= 5 { // 5..8 swap the axes
		ow, oh = h, w
	}
	out := NewRGB(ow, oh)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var dx, dy int
			switch orientation {
			case 2: // mirror horizontal
				dx, dy = w-1-x, y
			case 3: // rotate 180
				dx, dy = w-1-x, h-1-y
			case 4: // mirror vertical
				dx, dy = x, h-1-y
			case 5: // transpose
				dx, dy = y, x
			case 6: // rotate 90 clockwise
				dx, dy = h-1-y, x
			case 7: // transverse
				dx, dy = h-1-y, w-1-x
			case 8: // rotate 90 counter-clockwise
				dx, dy = y, w-1-x
			}
			s := (y*w + x) * 3
			d := (dy*ow + dx) * 3
			copy(out.Pix[d:d+3], m.Pix[s:s+3])
		}
	}
	return out
}

// FlipHorizontal mirrors the image left to right.
func FlipHorizontal(m *RGB) *RGB { return Orient(m, 2) }
