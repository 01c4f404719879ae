package main

import (
	"encoding/binary"
	"math"
)

func leU32(b []byte) uint32        { return binary.LittleEndian.Uint32(b) }
func f32frombits(u uint32) float32 { return math.Float32frombits(u) }
