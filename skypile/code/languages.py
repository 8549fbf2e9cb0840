"""Programming language of a source file, from its extension or its well-known file name.

Like RedPajama's extension whitelist, a file whose language we cannot name is not
code we train on (``code_lang`` drops it as ``unknown_extension``).  Names are
lowercase and stable: they become the shard's ``lang`` column and the keys of the
``code.languages`` and ``code.markup_languages`` settings.
"""

from __future__ import annotations

from pathlib import PurePosixPath

_BY_EXTENSION: dict[str, tuple[str, ...]] = {
    "assembly": ("asm", "s", "nasm", "a51"),
    "batchfile": ("bat", "cmd"),
    "c": ("c", "h"),
    "c++": ("cpp", "cc", "cxx", "c++", "hpp", "hh", "hxx", "h++", "ipp", "inl", "cppm", "ixx", "txx", "tcc"),
    "c#": ("cs", "csx"),
    "clojure": ("clj", "cljs", "cljc", "cljx", "edn"),
    "cmake": ("cmake",),
    "css": ("css", "scss", "sass", "less"),
    "dart": ("dart",),
    "elixir": ("ex", "exs"),
    "emacs lisp": ("el",),
    "erlang": ("erl", "hrl", "escript"),
    "f#": ("fs", "fsi", "fsx"),
    "fortran": ("f", "f90", "f95", "f03", "f08", "f77", "for", "fpp"),
    "go": ("go",),
    "graphql": ("graphql", "graphqls", "gql"),
    "groovy": ("groovy", "gvy", "gradle"),
    "haskell": ("hs", "lhs"),
    "hcl": ("hcl", "tf", "tfvars", "nomad"),
    "html": ("html", "htm", "xhtml", "xht"),
    "java": ("java",),
    "javascript": ("js", "mjs", "cjs", "jsx"),
    "json": ("json", "jsonc", "json5", "geojson", "webmanifest", "har", "avsc", "gltf"),
    "julia": ("jl",),
    "kotlin": ("kt", "kts"),
    "lua": ("lua", "rockspec"),
    "markdown": ("md", "markdown", "mdown"),
    "matlab": ("m",),
    "nix": ("nix",),
    "objective-c": ("mm",),
    "ocaml": ("ml", "mli"),
    "perl": ("pl", "pm", "pod", "perl", "t"),
    "php": ("php", "php3", "php4", "php5", "phps", "phpt"),
    "powershell": ("ps1", "psd1", "psm1"),
    "protocol buffer": ("proto",),
    "python": ("py", "pyi", "pyw", "py3"),
    "r": ("r", "rd"),
    "restructuredtext": ("rst",),
    "ruby": ("rb", "rake", "gemspec", "rbi", "jbuilder"),
    "rust": ("rs",),
    "scala": ("scala", "sc", "sbt"),
    "shell": ("sh", "bash", "zsh", "ksh", "command"),
    "sql": ("sql", "mysql", "pgsql", "psql", "ddl"),
    "svelte": ("svelte",),
    "swift": ("swift",),
    "tex": ("tex", "sty", "cls", "bbx", "cbx", "lbx"),
    "toml": ("toml",),
    "typescript": ("ts", "tsx", "mts", "cts"),
    "vue": ("vue",),
    "xml": ("xml", "xsd", "xsl", "xslt", "csproj", "vbproj", "vcxproj", "fsproj", "props", "targets", "nuspec",
            "storyboard", "xib", "resx", "plist", "svg", "iml", "fxml", "gpx", "xaml", "axaml", "wixproj"),
    "yaml": ("yaml", "yml"),
    "zig": ("zig", "zon"),
}

_BY_FILENAME: dict[str, str] = {
    "makefile": "makefile", "gnumakefile": "makefile", "bsdmakefile": "makefile", "kbuild": "makefile",
    "dockerfile": "dockerfile", "containerfile": "dockerfile",
    "cmakelists.txt": "cmake",
    "rakefile": "ruby", "gemfile": "ruby", "podfile": "ruby", "brewfile": "ruby", "capfile": "ruby",
    "jenkinsfile": "groovy",
    "pkgbuild": "shell", ".bashrc": "shell", ".bash_profile": "shell", ".zshrc": "shell", ".profile": "shell",
}

EXTENSIONS: dict[str, str] = {ext: lang for lang, exts in _BY_EXTENSION.items() for ext in exts}
LANGUAGES: frozenset[str] = frozenset(EXTENSIONS.values()) | frozenset(_BY_FILENAME.values())


def language_of(path: str) -> str:
    """``"src/app/main.py"`` → ``"python"``; ``"Makefile"`` → ``"makefile"``; ``""`` when unknown."""
    name = PurePosixPath(path.replace("\\", "/")).name
    lower = name.lower()
    if lower in _BY_FILENAME:
        return _BY_FILENAME[lower]
    if name == "Dockerfile" or lower.endswith(".dockerfile"):
        return "dockerfile"
    stem, dot, ext = lower.rpartition(".")
    if not dot or not stem:  # no extension, or a dotfile like ".gitignore"
        return ""
    return EXTENSIONS.get(ext, "")
