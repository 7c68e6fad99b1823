#!/usr/bin/perl
# sql_tokens.pl — every name and operator symbol the project's SQL could use,
# for the trap schema (test/integration/trap_schema.sh).
#
#   sql_tokens.pl FILE...     *.sql files whole, *.c/*.h files: their string literals
#
# Prints "ident<TAB>NAME" and "op<TAB>SYMBOL" lines (COPY text format), sorted and unique.  Comments are
# left out; everything else counts (a superset is harmless: it only makes
# more traps).  Identifiers are lowercased unless double-quoted, as the SQL
# parser folds them.  Operator symbols: every run of operator characters and
# every substring of it, since the lexer splits runs such as "=-" or "<>-".
use strict;
use warnings;

my (%ident, %op);

sub tokens {
	my ($text) = @_;
	# a quoted identifier keeps its case: COLLATE "C", "any"
	while ($text =~ /"((?:[^"]|"")+)"/g) {
		(my $q = $1) =~ s/""/"/g;
		$ident{$q} = 1 if $q =~ /^[^\s\\]{1,63}$/;
	}
	$ident{lc $1} = 1 while $text =~ /([A-Za-z_\x80-\xff][A-Za-z0-9_\$\x80-\xff]*)/g;
	while ($text =~ m{([-+*/<>=~!@#%^&|`?]+)}g) {
		my $run = $1;
		for my $i (0 .. length($run) - 1) {
			for my $n (1 .. length($run) - $i) {
				$op{substr($run, $i, $n)} = 1;
			}
		}
	}
}

for my $file (@ARGV) {
	open(my $fh, '<', $file) or die "$file: $!";
	my $src = do { local $/; <$fh> };
	close $fh;
	if ($file =~ /\.sql$/) {
		$src =~ s{/\*.*?\*/}{ }gs;
		$src =~ s{--[^\n]*}{ }g;
		tokens($src);
	} else {
		# C: drop character literals and comments, then read the string
		# literals (adjacent ones joined, as the compiler does)
		$src =~ s{'(?:\\.|[^\\'\n])'}{0}g;
		$src =~ s{/\*.*?\*/}{ }gs;
		$src =~ s{//[^\n]*}{ }g;
		$src =~ s{^\s*#\s*include[^\n]*}{}mg;
		my @lits;
		while ($src =~ /"((?:\\.|[^"\\\n])*)"(\s*)/g) {
			my ($lit, $gap) = ($1, $2);
			$lit =~ s/\\n/ /g;
			$lit =~ s/\\(.)/$1/g;
			push @lits, $lit;
		}
		tokens(join(' ', @lits));
	}
}
# the lexer turns != into <>
$op{'<>'} = 1 if $op{'!='};
print "ident\t$_\n" for sort keys %ident;
print "op\t$_\n" for sort keys %op;
