#include <stdio.h>
#include <unistd.h>

int main(void) {
	printf("hello from a static binary, uid %d\n", (int)getuid());
	return 0;
}
