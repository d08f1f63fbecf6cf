"""What the management commands of every app (accounts, deploy, …) share."""


class SayMixin:
    """`self.say(line)`: one line of progress on stdout, silent under `--verbosity 0`, and flushed at once so a
    long command (build_image, backup) shows where it is. List it before BaseCommand in the bases."""

    verbosity = 1

    def execute(self, *args, **options):
        self.verbosity = options.get("verbosity", 1)
        return super().execute(*args, **options)

    def say(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stdout.write(message)
            self.stdout.flush()
