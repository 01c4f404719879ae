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

// func warpRowAVX2(dr, dg, db *float32, offs *int32, fxs, fys *float32, n int, pix *uint8, stride int, k *rowConsts)
//
// colourRowAVX2 for rotated maps: each sample has its own vertical weight
// (fys) and its offset is into the whole image; the bottom tap is one row
// (stride bytes) below. Every offs[i]+stride+8 must lie inside the pixels.
TEXT ·warpRowAVX2(SB), NOSPLIT, $0-80
	MOVQ dr+0(FP), AX
	MOVQ dg+8(FP), BX
	MOVQ db+16(FP), CX
	MOVQ offs+24(FP), DX
	MOVQ fxs+32(FP), SI
	MOVQ fys+40(FP), R13
	MOVQ n+48(FP), DI
	MOVQ pix+56(FP), R8
	MOVQ stride+64(FP), R9
	ADDQ R8, R9 // the bottom row's base
	MOVQ k+72(FP), R10

	VMOVUPS 32(R10), Y12 // per-lane channel scale (R, G, B, ...)
	VMOVUPS 64(R10), Y10 // per-lane channel bias
	VMOVDQU 96(R10), Y11 // lane permutation 3 4 5 ...

	XORQ R11, R11

warploop:
	CMPQ R11, DI
	JAE  warpdone

	MOVLQSX (DX)(R11*4), R12
	VPMOVZXBD (R8)(R12*1), Y0
	VPMOVZXBD (R9)(R12*1), Y1
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y1, Y1
	VSUBPS    Y0, Y1, Y1
	VBROADCASTSS (R13)(R11*4), Y13
	VFMADD231PS Y13, Y1, Y0
	VPERMPS   Y0, Y11, Y2
	VSUBPS    Y0, Y2, Y2
	VBROADCASTSS (SI)(R11*4), Y3
	VFMADD231PS Y3, Y2, Y0
	VFMADD213PS Y10, Y12, Y0
	VMOVSS     X0, (AX)(R11*4)
	VEXTRACTPS $1, X0, (BX)(R11*4)
	VEXTRACTPS $2, X0, (CX)(R11*4)

	INCQ R11
	JMP  warploop

warpdone:
	VZEROUPPER
	RET
