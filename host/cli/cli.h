/* Sub-commands.  Each takes argv starting at the command name and returns a
 * cnn_status; main() prints the message and maps the exit code. */
#ifndef CNN_CLI_CLI_H
#define CNN_CLI_CLI_H

int cnn_cmd_devices(int argc, char **argv);
int cnn_cmd_run(int argc, char **argv);
int cnn_cmd_info(int argc, char **argv);

#endif
