#include "textflag.h"

// func colourRowAVX2(dr, dg, db *float32, offs *int32, fxs *float32, n int, top, bot *uint8, k *rowConsts)
//
// One output sample per step, without gathers: an 8-byte zero-extending
// load per source row brings both taps (R0 G0 B0 R1 G1 B1 ..) into eight
// float lanes, one vertical lerp serves all six, a lane permutation lines
// the second tap up with the first for the horizontal lerp, and the three
// channels are stored to their planes. Every offs[i]+8 must lie inside top
// and bot.
TEXT ·colourRowAVX2(SB), NOSPLIT, $0-72
	MOVQ dr+0(FP), AX
	MOVQ dg+8(FP), BX
	MOVQ db+16(FP), CX
	MOVQ offs+24(FP), DX
	MOVQ fxs+32(FP), SI
	MOVQ n+40(FP), DI
	MOVQ top+48(FP), R8
	MOVQ bot+56(FP), R9
	MOVQ k+64(FP), R10

	VMOVUPS 0(R10), Y13   // fy
	VMOVUPS 32(R10), Y12 // per-lane channel scale (R, G, B, ...)
	VMOVUPS 64(R10), Y10 // per-lane channel bias
	VMOVDQU 96(R10), Y11 // lane permutation 3 4 5 ...

	XORQ R11, R11

loop:
	CMPQ R11, DI
	JAE  done

	MOVLQSX (DX)(R11*4), R12
	VPMOVZXBD (R8)(R12*1), Y0
	VPMOVZXBD (R9)(R12*1), Y1
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y1, Y1
	VSUBPS    Y0, Y1, Y1
	VFMADD231PS Y13, Y1, Y0 // both taps, vertically interpolated
	VPERMPS   Y0, Y11, Y2   // the second tap in lanes 0..2
	VSUBPS    Y0, Y2, Y2
	VBROADCASTSS (SI)(R11*4), Y3
	VFMADD231PS Y3, Y2, Y0
	VFMADD213PS Y10, Y12, Y0
	VMOVSS     X0, (AX)(R11*4)
	VEXTRACTPS $1, X0, (BX)(R11*4)
	VEXTRACTPS $2, X0, (CX)(R11*4)

	INCQ R11
	JMP  loop

done:
	VZEROUPPER
	RET
