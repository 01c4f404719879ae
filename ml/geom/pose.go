package geom

import (
	"errors"
	"math"
)

// Point3 is a 3D position.
type Point3 struct{ X, Y, Z float64 }

// Pose is a head orientation in degrees (see EstimatePose for the axes).
type Pose struct{ Yaw, Pitch, Roll float64 }

// ErrPoseDiverged says the pose solve found no usable rotation.
var ErrPoseDiverged = errors.New("pose estimate did not converge")

// EstimatePose solves a small Perspective-n-Point problem under scaled
// orthographic (weak perspective) projection, which suits faces: their depth
// is small next to their distance from the camera, so no camera intrinsics
// are needed. The model is
//
//	u = s·(r1·X) + tx,  v = s·(r2·X) + ty
//
// where r1, r2 are the first two rows of the rotation R taking the 3D model
// (X right, Y down, Z away from the camera, as seen in a frontal photo) into
// camera axes. The solve is:
//  1. linear least squares for the 2x4 affine camera (8 unknowns),
//  2. the nearest pair of orthonormal rows gives s and an initial R,
//  3. Gauss–Newton on (rotation vector update, s, tx, ty) minimising the
//     reprojection error, a few iterations.
//
// Angles, with R = Rz(roll)·Ry(yaw)·Rx(pitch):
//   - yaw: turn about the vertical axis, positive when the face turns towards
//     the image's right (the subject's left);
//   - pitch: nod about the horizontal axis, positive when the face looks up;
//   - roll: in-plane tilt, positive when the head tilts clockwise in the image.
func EstimatePose(model []Point3, image []Point) (Pose, error) {
	n := len(model)
	if n < 4 || n != len(image) {
		return Pose{}, ErrDegenerate
	}
	// 1. affine camera: u = m1·[X 1], v = m2·[X 1].
	var ata [4][4]float64
	var atu, atv [4]float64
	for i := range n {
		row := [4]float64{model[i].X, model[i].Y, model[i].Z, 1}
		for a := range 4 {
			for b := range 4 {
				ata[a][b] += row[a] * row[b]
			}
			atu[a] += row[a] * image[i].X
			atv[a] += row[a] * image[i].Y
		}
	}
	m1, ok1 := solve4(ata, atu)
	m2, ok2 := solve4(ata, atv)
	if !ok1 || !ok2 {
		return Pose{}, ErrDegenerate
	}
	r1 := [3]float64{m1[0], m1[1], m1[2]}
	r2 := [3]float64{m2[0], m2[1], m2[2]}
	s := (norm3(r1) + norm3(r2)) / 2
	if s < 1e-9 {
		return Pose{}, ErrDegenerate
	}
	// 2. nearest orthonormal pair: symmetric orthogonalisation.
	c, d := unit3(add3(unit3(r1), unit3(r2))), unit3(sub3(unit3(r1), unit3(r2)))
	r1 = scale3(add3(c, d), 1/math.Sqrt2)
	r2 = scale3(sub3(c, d), 1/math.Sqrt2)
	R := [3][3]float64{r1, r2, cross3(r1, r2)}
	tx, ty := m1[3], m2[3]

	// 3. Gauss–Newton on p = (w1, w2, w3, s, tx, ty), R ← exp([w]×)·R.
	residual := func(R [3][3]float64, s, tx, ty float64) []float64 {
		res := make([]float64, 2*n)
		for i, p := range model {
			X := [3]float64{p.X, p.Y, p.Z}
			res[2*i] = s*dot3(R[0], X) + tx - image[i].X
			res[2*i+1] = s*dot3(R[1], X) + ty - image[i].Y
		}
		return res
	}
	cost := func(r []float64) float64 {
		var c float64
		for _, v := range r {
			c += v * v
		}
		return c
	}
	cur := residual(R, s, tx, ty)
	for range 20 {
		const h = 1e-6
		var J [][6]float64 = make([][6]float64, 2*n)
		for k := range 6 {
			dp := [6]float64{}
			dp[k] = h
			Rk := mulR(rodrigues(dp[0], dp[1], dp[2]), R)
			rk := residual(Rk, s+dp[3]*s, tx+dp[4]*s, ty+dp[5]*s)
			for i := range rk {
				J[i][k] = (rk[i] - cur[i]) / h
			}
		}
		var jtj [6][6]float64
		var jtr [6]float64
		for i := range J {
			for a := range 6 {
				jtr[a] += J[i][a] * cur[i]
				for b := range 6 {
					jtj[a][b] += J[i][a] * J[i][b]
				}
			}
		}
		for a := range 6 {
			jtj[a][a] *= 1 + 1e-6 // a touch of damping keeps the step defined
		}
		step, ok := solve6(jtj, jtr)
		if !ok {
			break
		}
		Rn := mulR(rodrigues(-step[0], -step[1], -step[2]), R)
		sn, txn, tyn := s-step[3]*s, tx-step[4]*s, ty-step[5]*s
		next := residual(Rn, sn, txn, tyn)
		if cost(next) >= cost(cur) {
			break
		}
		R, s, tx, ty, cur = Rn, sn, txn, tyn, next
	}
	if s <= 0 || math.IsNaN(s) {
		return Pose{}, ErrPoseDiverged
	}
	return eulerZYX(R), nil
}

// eulerZYX decomposes R = Rz(roll)·Ry(yaw)·Rx(pitch) into degrees, with the
// signs documented on EstimatePose.
func eulerZYX(R [3][3]float64) Pose {
	yaw := math.Asin(math.Max(-1, math.Min(1, -R[2][0])))
	pitch := math.Atan2(R[2][1], R[2][2])
	roll := math.Atan2(R[1][0], R[0][0])
	const deg = 180 / math.Pi
	// With Y pointing down and Z away from the camera, a positive rotation
	// about Y turns the nose towards the image's left and a positive one about
	// X tips the nose down: flip both so that "right" and "up" are positive.
	return Pose{Yaw: -yaw * deg, Pitch: -pitch * deg, Roll: roll * deg}
}

func rodrigues(wx, wy, wz float64) [3][3]float64 {
	th := math.Sqrt(wx*wx + wy*wy + wz*wz)
	if th < 1e-15 {
		return [3][3]float64{{1, -wz, wy}, {wz, 1, -wx}, {-wy, wx, 1}}
	}
	kx, ky, kz := wx/th, wy/th, wz/th
	c, s := math.Cos(th), math.Sin(th)
	v := 1 - c
	return [3][3]float64{
		{c + kx*kx*v, kx*ky*v - kz*s, kx*kz*v + ky*s},
		{ky*kx*v + kz*s, c + ky*ky*v, ky*kz*v - kx*s},
		{kz*kx*v - ky*s, kz*ky*v + kx*s, c + kz*kz*v},
	}
}

func mulR(a, b [3][3]float64) [3][3]float64 {
	var r [3][3]float64
	for i := range 3 {
		for j := range 3 {
			for k := range 3 {
				r[i][j] += a[i][k] * b[k][j]
			}
		}
	}
	return r
}

func dot3(a, b [3]float64) float64    { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }
func norm3(a [3]float64) float64      { return math.Sqrt(dot3(a, a)) }
func add3(a, b [3]float64) [3]float64 { return [3]float64{a[0] + b[0], a[1] + b[1], a[2] + b[2]} }
func sub3(a, b [3]float64) [3]float64 { return [3]float64{a[0] - b[0], a[1] - b[1], a[2] - b[2]} }
func scale3(a [3]float64, k float64) [3]float64 {
	return [3]float64{a[0] * k, a[1] * k, a[2] * k}
}
func unit3(a [3]float64) [3]float64 {
	n := norm3(a)
	if n == 0 {
		return a
	}
	return scale3(a, 1/n)
}
func cross3(a, b [3]float64) [3]float64 {
	return [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}

func solve4(a [4][4]float64, b [4]float64) ([4]float64, bool) {
	m := make([][]float64, 4)
	for i := range 4 {
		m[i] = append(a[i][:], b[i])
	}
	x, ok := gauss(m)
	var r [4]float64
	copy(r[:], x)
	return r, ok
}

func solve6(a [6][6]float64, b [6]float64) ([6]float64, bool) {
	m := make([][]float64, 6)
	for i := range 6 {
		m[i] = append(a[i][:], b[i])
	}
	x, ok := gauss(m)
	var r [6]float64
	copy(r[:], x)
	return r, ok
}

// gauss solves an augmented n x (n+1) system by elimination with partial
// pivoting.
func gauss(m [][]float64) ([]float64, bool) {
	n := len(m)
	for col := range n {
		p := col
		for r := col + 1; r < n; r++ {
			if math.Abs(m[r][col]) > math.Abs(m[p][col]) {
				p = r
			}
		}
		if math.Abs(m[p][col]) < 1e-12 {
			return nil, false
		}
		m[col], m[p] = m[p], m[col]
		for r := col + 1; r < n; r++ {
			f := m[r][col] / m[col][col]
			for c := col; c <= n; c++ {
				m[r][c] -= f * m[col][c]
			}
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := m[r][n]
		for c := r + 1; c < n; c++ {
			s -= m[r][c] * x[c]
		}
		x[r] = s / m[r][r]
	}
	return x, true
}
