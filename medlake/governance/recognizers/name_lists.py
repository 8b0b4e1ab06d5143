"""Common given names and surnames (English, Irish, German, Malaysian, Indian) for name context."""

from __future__ import annotations


def words(text: str) -> frozenset[str]:
    """The whitespace-separated words of a block of text (lists below stay readable)."""
    return frozenset(text.split())


GIVEN_NAMES = words(
    """
    Aaron Adam Adrian Ahmad Aidan Aisling Alan Albert Alexander Alexandra Alice Alison Amanda
    Amelia Amir Amy Andrea Andreas Andrew Angela Anita Anja Ann Anna Anne Annika Anthony Anton
    Aoife Arjun Arun Ashley Aziz Azlan Barbara Ben Benjamin Bernd Bettina Birgit Brian Bridget
    Caitlin Carl Carmen Carol Caroline Catherine Charles Charlotte Chloe Chris Christa Christian
    Christina Christine Christopher Ciara Ciaran Claire Claudia Colm Conor Cormac Daniel Daniela
    David Deborah Declan Deepak Denise Dennis Derek Diana Dieter Dirk Donal Donna Doris Dorothy
    Douglas Edward Eileen Elaine Elena Elias Elisabeth Elizabeth Elke Ella Emily Emma Eoin Eric
    Erik Erika Eva Fabian Farah Fatimah Felix Fiona Florian Frank Franz Gabriele Gareth Gary
    Georg George Gerhard Gisela Grace Gregor Greta Gudrun Günter Hafiz Hamid Hannah Hans Harald
    Harry Hasan Heike Heinz Helen Helga Helmut Henry Hermann Holger Ian Ibrahim Ines Ingrid
    Irene Isabel Ismail Jack Jacob James Jan Jana Jane Janet Jason Jennifer Jens Jessica Joachim
    Johann Johanna John Jonas Joseph Joyce Judith Julia Julian Jörg Jürgen Kai Karen Karin Karl
    Katharina Kathleen Katrin Kelly Kenneth Kevin Kim Klaus Kumar Kurt Laura Lauren Lea Lena
    Leon Liam Lim Linda Lisa Lukas Maria Marie Mark Markus Martha Martin Mary Matthew Matthias
    Max Maximilian Megan Mei Melanie Michael Michaela Michelle Mohamed Mohammad Monika Muhammad
    Nadia Nancy Niamh Nicole Niklas Nina Noah Norbert Nurul Oliver Olivia Oscar Owen Padraig
    Patricia Patrick Paul Paula Peter Petra Philip Philipp Priya Rachel Rafael Rahul Raj Rajesh
    Ralf Rebecca Renate Richard Rita Robert Roisin Ronan Rosa Ruth Ryan Sabine Sandra Sarah Sean
    Sebastian Seán Siew Simon Simone Siobhan Siti Sophia Sophie Stefan Stefanie Steffen
    Stephanie Stephen Steven Susan Susanne Sven Tanja Thomas Tim Timothy Tobias Tom Torsten
    Ulrich Ulrike Ursula Uwe Vanessa Victoria Volker Walter Werner William Wolfgang Yusof Zainab
    """
)
SURNAMES = words(
    """
    Abdullah Ahmad Ali Allen Anand Anderson Bailey Baker Barry Bauer Beck Becker Bergmann
    Brennan Brown Burke Byrne Campbell Carroll Carter Chan Chen Chong Clark Clarke Collins
    Connolly Cooper Daly Davies Davis Dietrich Doherty Dolan Doyle Dunne Edwards Evans Fahey
    Farrell Fischer Fitzgerald Flynn Foley Franke Friedrich Fuchs Gallagher Garcia Goh Graf
    Green Günther Haas Hall Harris Hartmann Hassan Healy Hennessy Hoffmann Hofmann Horn Huber
    Hughes Hussain Ibrahim Jackson James Jansen Johnson Jones Jäger Kaiser Kaur Keller Kelly
    Kennedy Khan Kim King Klein Koch Koh Kraus Krause Krüger Kuhn Kumar Lang Lange Lee Lehmann
    Lewis Lim Lorenz Ludwig Lynch Maguire Martin Mayer McCarthy McDonald McGrath Meier Meyer
    Miller Mohamed Moore Morgan Moser Murphy Murray Müller Nair Neumann Ng Nolan O'Brien
    O'Connell O'Connor O'Donnell O'Neill O'Reilly O'Sullivan Olson Ong Otto Patel Peters
    Peterson Pillai Power Quinn Rahman Reddy Regan Richter Roberts Robinson Roth Ryan Sauer
    Scheffler Schmid Schmidt Schmitt Schmitz Schneider Scholz Schröder Schubert Schulte Schulz
    Schumacher Schuster Schwarz Schäfer Scott Sharma Simon Singh Smith Sommer Stein Sullivan Tan
    Taylor Teo Thomas Thompson Vogel Vogt Wagner Walker Walsh Walter Wang Weber Weiß Werner
    White Williams Wilson Winkler Wolf Wong Wood Wright Yap Young Zimmermann
    """
)
