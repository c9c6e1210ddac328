# The exec helper for linux/amd64: the machine code behind Program's bytes.
# TestProgramMatchesSource assembles it and compares.
#
# argv: [name, n, path, gateway argv...]; fds: n = the death pipe's read
# end, n+1 its write end, n+2 the report socket, n+3 the gateway's stderr,
# n+4 this program (the descriptor it was executed through).
	.intel_syntax noprefix
	.text
	.globl _start
_start:
	mov	rbx, rsp		# rbx: &argc, argv and envp above it
	cmp	qword ptr [rbx], 4
	jb	fail			# argc < 4: nothing to execute
	mov	rsi, [rbx+16]		# argv[1]: n in decimal
	xor	eax, eax
atoi:
	movzx	ecx, byte ptr [rsi]
	test	ecx, ecx
	jz	parsed
	sub	ecx, '0'
	cmp	ecx, 9
	ja	fail
	imul	eax, eax, 10
	add	eax, ecx
	inc	rsi
	jmp	atoi
parsed:
	cmp	eax, 3
	jb	fail
	lea	r13d, [rax+1]		# write end
	lea	r14d, [rax+2]		# report
	lea	r15d, [rax+3]		# gateway's stderr
	lea	r12d, [rax+4]		# this program
	sub	rsp, 32			# scratch
wait_go:				# read(report, scratch, 1), again on EINTR
	xor	eax, eax
	mov	edi, r14d
	mov	rsi, rsp
	mov	edx, 1
	syscall
	cmp	rax, -4
	je	wait_go
	cmp	rax, 1
	jne	fail			# EOF: gwlock died before arming
	cmp	byte ptr [rsp], 'g'
	jne	fail
	mov	eax, 157		# prctl(PR_SET_PDEATHSIG, 0)
	mov	edi, 1
	xor	esi, esi
	xor	edx, edx
	xor	r10d, r10d
	xor	r8d, r8d
	syscall
	test	rax, rax
	jnz	fail
	mov	eax, 292		# dup3(stderr, 2, 0)
	mov	edi, r15d
	mov	esi, 2
	xor	edx, edx
	syscall
	cmp	rax, 2
	jne	fail
	mov	eax, 3			# close(stderr)
	mov	edi, r15d
	syscall
	mov	eax, 72			# fcntl(write end, F_SETFD, FD_CLOEXEC)
	mov	edi, r13d
	mov	esi, 2
	mov	edx, 1
	syscall
	mov	eax, 72			# fcntl(report, F_SETFD, FD_CLOEXEC)
	mov	edi, r14d
	mov	esi, 2
	mov	edx, 1
	syscall
	mov	eax, 72			# fcntl(this program, F_SETFD, FD_CLOEXEC)
	mov	edi, r12d
	mov	esi, 2
	mov	edx, 1
	syscall
	mov	byte ptr [rsp], 'x'	# write(report, "x", 1)
	mov	eax, 1
	mov	edi, r14d
	mov	rsi, rsp
	mov	edx, 1
	syscall
	cmp	rax, 1
	jne	fail
	mov	rcx, [rbx]		# execve(argv[2], &argv[3], envp)
	mov	rdi, [rbx+24]
	lea	rsi, [rbx+32]
	lea	rdx, [rbx+rcx*8+16]
	mov	eax, 59
	syscall
	neg	rax			# errno, written as "\0errno=N\n"
	lea	rdi, [rsp+31]
	mov	byte ptr [rdi], 10
	mov	ecx, 10
digit:
	xor	edx, edx
	div	rcx
	add	dl, '0'
	dec	rdi
	mov	[rdi], dl
	test	rax, rax
	jnz	digit
	sub	rdi, 7
	mov	dword ptr [rdi], 0x72726500
	mov	word ptr [rdi+4], 0x6f6e
	mov	byte ptr [rdi+6], '='
	lea	rdx, [rsp+32]
	sub	rdx, rdi
	mov	rsi, rdi
	mov	edi, r14d
	mov	eax, 1
	syscall
	mov	edi, 126
	jmp	exit
fail:
	mov	edi, 1
exit:
	mov	eax, 231		# exit_group
	syscall
