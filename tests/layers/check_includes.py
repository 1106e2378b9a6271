#!/usr/bin/env python3
"""Fails when a source file includes a header of a layer above its own, or sits in no layer.

Usage: check_includes.py SOURCE_ROOT LAYER...   (LAYER: its folders, comma-separated; bottom layer first)

The link-time layer checks (engine/meson.build) catch calls upward; this catches what never reaches the linker:
inline functions, templates, types and constants of a higher layer's headers.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
SOURCE_SUFFIXES = ('.c', '.cpp', '.h', '.hpp', '.h.in')


def layer_of(path, layers):
    """The index of the layer whose folder holds `path` (a path relative to the source root), or None."""
    best, best_length = None, -1
    for index, folders in enumerate(layers):
        for folder in folders:
            if (path == folder or path.startswith(folder + '/')) and len(folder) > best_length:
                best, best_length = index, len(folder)
    return best


def resolve(root, including_dir, kind, name):
    """The included file as a path relative to the source root, or None for a system or generated header."""
    if name.startswith('chronofabric/'):
        return 'engine/include/' + name   # the public headers, as users include them
    if kind == '<':
        return None
    for base in (including_dir, root):
        candidate = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(candidate):
            return os.path.relpath(candidate, root)
    return None


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root = os.path.abspath(argv[1])
    layers = [[folder.strip('/') for folder in spec.split(',') if folder] for spec in argv[2:]]
    names = [','.join(folders) for folders in layers]
    checked, violations = 0, []
    for folders in layers:
        for folder in folders:
            for directory, _, files in os.walk(os.path.join(root, folder)):
                for file in sorted(files):
                    if not file.endswith(SOURCE_SUFFIXES):
                        continue
                    path = os.path.join(directory, file)
                    relative = os.path.relpath(path, root)
                    own = layer_of(relative, layers)
                    checked += 1
                    with open(path, encoding='utf-8', errors='replace') as text:
                        for number, line in enumerate(text, 1):
                            match = INCLUDE.match(line)
                            if not match:
                                continue
                            target = resolve(root, directory, match.group(1), match.group(2))
                            if target is None:
                                continue
                            theirs = layer_of(target, layers)
                            if theirs is None:
                                violations.append(f'{relative}:{number}: includes {target}, which is in no layer')
                            elif theirs > own:
                                violations.append(f'{relative}:{number}: includes {target}: layer '
                                                  f'{names[theirs]} is above {names[own]}')
    # A folder added beside the layers (engine/quic, say) must be given a layer before its code is checked.
    for top in sorted({folder.split('/')[0] for folders in layers for folder in folders}):
        for directory, _, files in os.walk(os.path.join(root, top)):
            for file in sorted(files):
                relative = os.path.relpath(os.path.join(directory, file), root)
                if file.endswith(SOURCE_SUFFIXES) and layer_of(relative, layers) is None:
                    violations.append(f'{relative}: in no layer (add its folder to layer_folders, engine/meson.build)')
    for violation in violations:
        print(violation)
    if checked == 0:
        print('no sources found under ' + root)
        return 1
    print(f'{checked} files checked, {len(violations)} problems')
    return 1 if violations else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
