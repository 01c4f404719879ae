#include "textflag.h"

// func dotsInt8AVX2(q *int8, absq *int8, codes *int8, dim, n int, out *int32)
//
// Four code rows per iteration. Per 32 bytes: VPSIGNB moves the sign of q onto the
// row, VPMADDUBSW multiplies |q| (unsigned) by it and adds byte pairs into int16
// (at most 2*127*127, so no saturation because codes are clamped to [-127, 127]),
// VPMADDWD by ones widens to int32. The four accumulators are reduced together
// with horizontal adds so the four results leave in one store.
TEXT ·dotsInt8AVX2(SB), NOSPLIT, $0-48
	MOVQ q+0(FP), SI
	MOVQ absq+8(FP), DI
	MOVQ codes+16(FP), BX
	MOVQ dim+24(FP), CX
	MOVQ n+32(FP), DX
	MOVQ out+40(FP), R8
	MOVQ $0x0001000100010001, AX
	MOVQ AX, X15
	VPBROADCASTQ X15, Y15
	LEAQ (CX)(CX*2), R9

rows:
	CMPQ DX, $4
	JL   done
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	XORQ R10, R10

cols:
	VMOVDQU (SI)(R10*1), Y4
	VMOVDQU (DI)(R10*1), Y5
	LEAQ    (BX)(R10*1), R11

	VMOVDQU    (R11), Y6
	VPSIGNB    Y4, Y6, Y6
	VPMADDUBSW Y6, Y5, Y6
	VPMADDWD   Y15, Y6, Y6
	VPADDD     Y6, Y0, Y0

	VMOVDQU    (R11)(CX*1), Y7
	VPSIGNB    Y4, Y7, Y7
	VPMADDUBSW Y7, Y5, Y7
	VPMADDWD   Y15, Y7, Y7
	VPADDD     Y7, Y1, Y1

	VMOVDQU    (R11)(CX*2), Y8
	VPSIGNB    Y4, Y8, Y8
	VPMADDUBSW Y8, Y5, Y8
	VPMADDWD   Y15, Y8, Y8
	VPADDD     Y8, Y2, Y2

	VMOVDQU    (R11)(R9*1), Y9
	VPSIGNB    Y4, Y9, Y9
	VPMADDUBSW Y9, Y5, Y9
	VPMADDWD   Y15, Y9, Y9
	VPADDD     Y9, Y3, Y3

	ADDQ $32, R10
	CMPQ R10, CX
	JL   cols

	VPHADDD      Y1, Y0, Y0
	VPHADDD      Y3, Y2, Y2
	VPHADDD      Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VMOVDQU      X0, (R8)

	ADDQ $16, R8
	LEAQ (BX)(CX*4), BX
	SUBQ $4, DX
	JMP  rows

done:
	VZEROUPPER
	RET

// func dotsInt8VNNI(q *int8, codes *int8, dim, n int, out *int32, qbias int32)
//
// AVX-512 VNNI: VPDPBUSD multiplies unsigned by signed bytes and adds groups of four
// into int32 lanes in one instruction. The stored row is signed, so it is flipped to
// unsigned with XOR 0x80 (t+128) and the query stays signed:
// dot(t+128, q) = dot(t, q) + 128*sum(q), and qbias = 128*sum(q) is subtracted at the
// end. dim must be a multiple of 64 and n of 4.
TEXT ·dotsInt8VNNI(SB), NOSPLIT, $0-44
	MOVQ q+0(FP), SI
	MOVQ codes+8(FP), BX
	MOVQ dim+16(FP), CX
	MOVQ n+24(FP), DX
	MOVQ out+32(FP), R8
	MOVL qbias+40(FP), AX
	VPBROADCASTD AX, X14
	MOVQ $0x8080808080808080, AX
	VPBROADCASTQ AX, Z31
	LEAQ (CX)(CX*2), R9

vrows:
	CMPQ DX, $4
	JL   vdone
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	XORQ R10, R10

vcols:
	VMOVDQU64 (SI)(R10*1), Z4
	LEAQ      (BX)(R10*1), R11

	VPXORD   (R11), Z31, Z6
	VPDPBUSD Z4, Z6, Z0
	VPXORD   (R11)(CX*1), Z31, Z7
	VPDPBUSD Z4, Z7, Z1
	VPXORD   (R11)(CX*2), Z31, Z8
	VPDPBUSD Z4, Z8, Z2
	VPXORD   (R11)(R9*1), Z31, Z9
	VPDPBUSD Z4, Z9, Z3

	ADDQ $64, R10
	CMPQ R10, CX
	JL   vcols

	// 512 -> 256 bits per accumulator, then the AVX2 reduction of four.
	VEXTRACTI64X4 $1, Z0, Y10
	VPADDD        Y10, Y0, Y0
	VEXTRACTI64X4 $1, Z1, Y11
	VPADDD        Y11, Y1, Y1
	VEXTRACTI64X4 $1, Z2, Y12
	VPADDD        Y12, Y2, Y2
	VEXTRACTI64X4 $1, Z3, Y13
	VPADDD        Y13, Y3, Y3
	VPHADDD       Y1, Y0, Y0
	VPHADDD       Y3, Y2, Y2
	VPHADDD       Y2, Y0, Y0
	VEXTRACTI128  $1, Y0, X1
	VPADDD        X1, X0, X0
	VPSUBD        X14, X0, X0
	VMOVDQU       X0, (R8)

	ADDQ $16, R8
	LEAQ (BX)(CX*4), BX
	SUBQ $4, DX
	JMP  vrows

vdone:
	VZEROUPPER
	RET

DATA iota16<>+0(SB)/4, $0
DATA iota16<>+4(SB)/4, $1
DATA iota16<>+8(SB)/4, $2
DATA iota16<>+12(SB)/4, $3
DATA iota16<>+16(SB)/4, $4
DATA iota16<>+20(SB)/4, $5
DATA iota16<>+24(SB)/4, $6
DATA iota16<>+28(SB)/4, $7
DATA iota16<>+32(SB)/4, $8
DATA iota16<>+36(SB)/4, $9
DATA iota16<>+40(SB)/4, $10
DATA iota16<>+44(SB)/4, $11
DATA iota16<>+48(SB)/4, $12
DATA iota16<>+52(SB)/4, $13
DATA iota16<>+56(SB)/4, $14
DATA iota16<>+60(SB)/4, $15
GLOBL iota16<>(SB), RODATA, $64

// func filterAboveAVX512(dots *int32, units *float32, n int, thr float32, idx *int32) int
//
// Writes to idx the positions i (n a multiple of 16) where float32(dots[i])*units[i]
// > thr, and returns how many: 16 rows per iteration with one compare into a mask and
// one compressing store, so the Go loop only sees the few rows that can enter a heap.
TEXT ·filterAboveAVX512(SB), NOSPLIT, $0-48
	MOVQ         dots+0(FP), SI
	MOVQ         units+8(FP), DI
	MOVQ         n+16(FP), CX
	VBROADCASTSS thr+24(FP), Z1
	MOVQ         idx+32(FP), R8
	VMOVDQU32    iota16<>(SB), Z2
	MOVL         $16, BX
	VPBROADCASTD BX, Z3
	XORQ         AX, AX
	XORQ         DX, DX

floop:
	CMPQ        AX, CX
	JGE         fdone
	VCVTDQ2PS   (SI)(AX*4), Z0
	VMULPS      (DI)(AX*4), Z0, Z0
	VCMPPS      $0x1e, Z1, Z0, K1
	KMOVW       K1, BX
	TESTL       BX, BX
	JZ          fnext
	VPCOMPRESSD Z2, K1, (R8)(DX*4)
	POPCNTL     BX, BX
	ADDQ        BX, DX

fnext:
	VPADDD Z3, Z2, Z2
	ADDQ   $16, AX
	JMP    floop

fdone:
	VZEROUPPER
	MOVQ DX, ret+40(FP)
	RET
