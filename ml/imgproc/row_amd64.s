#include "textflag.h"

// func colourRowAVX2(dr, dg, db *float32, offs *int32, fxs *float32, n int, top, bot *uint8, k *rowConsts)
//
// Eight output samples per iteration: four gathers read, for every sample,
// the dwords at its byte offset (R0 G0 B0 R1) and two bytes on (B0 R1 G1 B1)
// in the top and bottom source rows; each channel is then masked out,
// converted to float, interpolated vertically (fy) and horizontally (fx),
// scaled, biased and stored to its plane. n is a multiple of 8.
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

	MOVL $0xff, R12
	MOVQ R12, X15
	VPBROADCASTD X15, Y15 // byte mask
	MOVL $2, R12
	MOVQ R12, X14
	VPBROADCASTD X14, Y14 // offset of the second dword
	VMOVUPS 0(R10), Y13   // fy

	XORQ R11, R11

loop:
	CMPQ R11, DI
	JAE  done

	VMOVDQU (DX)(R11*4), Y0
	VPADDD  Y14, Y0, Y1
	VPCMPEQD Y6, Y6, Y6
	VPGATHERDD Y6, (R8)(Y0*1), Y2 // top R0 G0 B0 R1
	VPCMPEQD Y6, Y6, Y6
	VPGATHERDD Y6, (R8)(Y1*1), Y3 // top B0 R1 G1 B1
	VPCMPEQD Y6, Y6, Y6
	VPGATHERDD Y6, (R9)(Y0*1), Y4 // bottom R0 G0 B0 R1
	VPCMPEQD Y6, Y6, Y6
	VPGATHERDD Y6, (R9)(Y1*1), Y5 // bottom B0 R1 G1 B1
	VMOVUPS (SI)(R11*4), Y6       // fx

	// Red: byte 0 of the first dwords, byte 1 of the second.
	VPAND      Y15, Y2, Y7
	VCVTDQ2PS  Y7, Y7
	VPAND      Y15, Y4, Y8
	VCVTDQ2PS  Y8, Y8
	VSUBPS     Y7, Y8, Y8
	VFMADD231PS Y13, Y8, Y7
	VPSRLD     $8, Y3, Y9
	VPAND      Y15, Y9, Y9
	VCVTDQ2PS  Y9, Y9
	VPSRLD     $8, Y5, Y10
	VPAND      Y15, Y10, Y10
	VCVTDQ2PS  Y10, Y10
	VSUBPS     Y9, Y10, Y10
	VFMADD231PS Y13, Y10, Y9
	VSUBPS     Y7, Y9, Y9
	VFMADD231PS Y6, Y9, Y7
	VMULPS     32(R10), Y7, Y7
	VADDPS     128(R10), Y7, Y7
	VMOVUPS    Y7, (AX)(R11*4)

	// Green: byte 1 of the first dwords, byte 2 of the second.
	VPSRLD     $8, Y2, Y7
	VPAND      Y15, Y7, Y7
	VCVTDQ2PS  Y7, Y7
	VPSRLD     $8, Y4, Y8
	VPAND      Y15, Y8, Y8
	VCVTDQ2PS  Y8, Y8
	VSUBPS     Y7, Y8, Y8
	VFMADD231PS Y13, Y8, Y7
	VPSRLD     $16, Y3, Y9
	VPAND      Y15, Y9, Y9
	VCVTDQ2PS  Y9, Y9
	VPSRLD     $16, Y5, Y10
	VPAND      Y15, Y10, Y10
	VCVTDQ2PS  Y10, Y10
	VSUBPS     Y9, Y10, Y10
	VFMADD231PS Y13, Y10, Y9
	VSUBPS     Y7, Y9, Y9
	VFMADD231PS Y6, Y9, Y7
	VMULPS     64(R10), Y7, Y7
	VADDPS     160(R10), Y7, Y7
	VMOVUPS    Y7, (BX)(R11*4)

	// Blue: byte 2 of the first dwords, byte 3 of the second.
	VPSRLD     $16, Y2, Y7
	VPAND      Y15, Y7, Y7
	VCVTDQ2PS  Y7, Y7
	VPSRLD     $16, Y4, Y8
	VPAND      Y15, Y8, Y8
	VCVTDQ2PS  Y8, Y8
	VSUBPS     Y7, Y8, Y8
	VFMADD231PS Y13, Y8, Y7
	VPSRLD     $24, Y3, Y9
	VCVTDQ2PS  Y9, Y9
	VPSRLD     $24, Y5, Y10
	VCVTDQ2PS  Y10, Y10
	VSUBPS     Y9, Y10, Y10
	VFMADD231PS Y13, Y10, Y9
	VSUBPS     Y7, Y9, Y9
	VFMADD231PS Y6, Y9, Y7
	VMULPS     96(R10), Y7, Y7
	VADDPS     192(R10), Y7, Y7
	VMOVUPS    Y7, (CX)(R11*4)

	ADDQ $8, R11
	JMP  loop

done:
	VZEROUPPER
	RET
