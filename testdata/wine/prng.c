/* Go 1.26's Windows runtime imports ProcessPrng from bcryptprimitives.dll,
 * which Debian's Wine 8 lacks. This stand-in forwards to BCryptGenRandom so
 * that Windows test binaries run under Wine (make wine-test). */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
